//! When a schedule fires: a cron expression read in an IANA timezone, with the DST rule.
//!
//! Expressions are standard 5-field crontabs (`min hour dom mon dow`) or 6 fields with
//! seconds first. Days of the week count as in crontab: `0` or `7` is Sunday, `1`
//! Monday, …, `6` Saturday (names `MON`…`SUN` work too). When both day of month and
//! day of week are restricted, a day must match both.
//!
//! The expression is matched against the local wall clock of the timezone. Local
//! times then become instants by one rule, chosen so that no fire is lost or doubled
//! by a DST change:
//!
//! - a local time that a spring-forward skips (Berlin 02:30 on the last Sunday of
//!   March) fires once, at the first valid instant after it: the moment of the change
//!   (03:00 local); several skipped times, and a regular fire at that instant, merge
//!   into one fire;
//! - a local time that a fall-back repeats (Berlin 02:30 on the last Sunday of
//!   October) fires once, at its first occurrence (02:30 summer time).
//!
//! So a wall-clock hourly schedule fires 23 times on a spring-forward day and 24 times
//! on a fall-back day. Schedules that must follow real elapsed time use `UTC`.

use std::str::FromStr;

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// A cron expression or timezone that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TimingError(pub String);

/// A parsed cron expression in a timezone.
#[derive(Debug, Clone)]
pub struct Timing {
    cron: cron::Schedule,
    tz: Tz,
}

/// Parses an IANA timezone name (`Europe/Berlin`, `UTC`).
pub fn parse_timezone(name: &str) -> Result<Tz, TimingError> {
    Tz::from_str(name).map_err(|_| {
        TimingError(format!(
            "unknown timezone {name:?}: use an IANA name such as UTC, Europe/Berlin or America/New_York"
        ))
    })
}

/// Parses a 5-field crontab or a 6-field expression with seconds.
pub fn parse_cron(expr: &str) -> Result<cron::Schedule, TimingError> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let mut six: Vec<String> = match fields.len() {
        5 => std::iter::once("0")
            .chain(fields.iter().copied())
            .map(str::to_owned)
            .collect(),
        6 => fields.iter().map(|f| (*f).to_owned()).collect(),
        n => {
            return Err(TimingError(format!(
                "{expr:?} has {n} fields: expected 5 (min hour day month weekday) or 6 (with seconds first)"
            )));
        }
    };
    six[5] = weekdays(&six[5]).map_err(|e| TimingError(format!("{expr:?}: day of week: {e}")))?;
    cron::Schedule::from_str(&six.join(" ")).map_err(|e| TimingError(format!("{expr:?}: {e}")))
}

const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Rewrites a crontab day-of-week field (`0`/`7` = Sunday) as day names, since the
/// `cron` crate numbers days from `1` = Sunday.
fn weekdays(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok(field.to_owned());
    }
    let day = |s: &str| -> Result<u32, String> {
        if let Ok(n) = s.parse::<u32>() {
            return if n <= 7 {
                Ok(n % 7)
            } else {
                Err(format!("{n} is not a day (0-7, 0 and 7 are Sunday)"))
            };
        }
        const LONG: [&str; 7] = [
            "sunday",
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
        ];
        let lower = s.to_ascii_lowercase();
        DAY_NAMES
            .iter()
            .zip(LONG)
            .position(|(short, long)| lower.eq_ignore_ascii_case(short) || lower == long)
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| format!("{s:?} is not a day"))
    };
    let mut set = [false; 7];
    for item in field.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((b, s)) => {
                let s: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("bad step in {item:?}"))?;
                (b, Some(s))
            }
            None => (item, None),
        };
        // Ranges keep `7` as 7 so that `5-7` (Friday to Sunday) works.
        let end = |s: &str| -> Result<u32, String> { if s == "7" { Ok(7) } else { day(s) } };
        let (lo, hi) = match base.split_once('-') {
            _ if base == "*" => (0, 6),
            Some((a, b)) => (day(a)?, end(b)?),
            None if step.is_some() => (day(base)?, 6),
            None => (day(base)?, day(base)?),
        };
        if lo > hi {
            return Err(format!("{item:?} runs backwards"));
        }
        let mut d = lo;
        while d <= hi {
            set[(d % 7) as usize] = true;
            d += step.unwrap_or(1);
        }
    }
    if set.iter().all(|x| *x) {
        return Ok("*".to_owned());
    }
    Ok(DAY_NAMES
        .iter()
        .zip(set)
        .filter_map(|(n, on)| on.then_some(*n))
        .collect::<Vec<_>>()
        .join(","))
}

impl Timing {
    /// Parses `cron` for timezone `timezone`.
    pub fn new(cron: &str, timezone: &str) -> Result<Self, TimingError> {
        Ok(Self {
            cron: parse_cron(cron)?,
            tz: parse_timezone(timezone)?,
        })
    }

    /// The timezone.
    #[must_use]
    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// The fire instants strictly after `after`, in order, without repeats.
    pub fn fires_after(&self, after: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        // Walk the wall clock from `after`'s local time. Nothing before it can map to a
        // later instant: a gap's times map to the gap's end, which is after `after` only
        // when the whole gap is; and a repeated time maps to its first occurrence.
        let start = after.with_timezone(&self.tz).naive_local();
        let mut last: Option<DateTime<Utc>> = None;
        self.cron
            .after(&Utc.from_utc_datetime(&start))
            .map(|naive| self.instant(naive.naive_utc()))
            .filter(move |t| {
                let fresh = *t > after && last.is_none_or(|l| *t > l);
                if fresh {
                    last = Some(*t);
                }
                fresh
            })
    }

    /// The next fire strictly after `t`.
    #[must_use]
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.fires_after(t).next()
    }

    /// The instant of local wall-clock time `local`, by the DST rule of the module.
    fn instant(&self, local: NaiveDateTime) -> DateTime<Utc> {
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(t) => t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
            LocalResult::None => {
                // Skipped by a spring-forward: the first valid local minute after it is the
                // end of the gap (tz transitions fall on whole minutes).
                let mut m = local
                    .with_second(0)
                    .and_then(|m| m.with_nanosecond(0))
                    .unwrap_or(local);
                for _ in 0..(48 * 60) {
                    m += Duration::minutes(1);
                    if let Some(t) = self.tz.from_local_datetime(&m).earliest() {
                        return t.with_timezone(&Utc);
                    }
                }
                // No valid time within two days: not a real timezone rule.
                Utc.from_utc_datetime(&local)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn fires(cron: &str, tz: &str, after: &str, n: usize) -> Vec<String> {
        Timing::new(cron, tz)
            .unwrap()
            .fires_after(utc(after))
            .take(n)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .collect()
    }

    #[test]
    fn five_field_crontabs_fire_on_the_minute() {
        assert_eq!(
            fires("5 * * * *", "UTC", "2026-11-22T10:00:00Z", 3),
            [
                "2026-11-22T10:05:00Z",
                "2026-11-22T11:05:00Z",
                "2026-11-22T12:05:00Z"
            ]
        );
        // Strictly after: a fire at exactly `after` is not repeated.
        assert_eq!(
            fires("5 * * * *", "UTC", "2026-11-22T10:05:00Z", 1),
            ["2026-11-22T11:05:00Z"]
        );
    }

    #[test]
    fn six_field_expressions_have_seconds() {
        assert_eq!(
            fires("*/20 * * * * *", "UTC", "2026-11-22T10:00:00Z", 3),
            [
                "2026-11-22T10:00:20Z",
                "2026-11-22T10:00:40Z",
                "2026-11-22T10:01:00Z"
            ]
        );
        assert_eq!(
            fires("30 0 8 * * *", "UTC", "2026-11-22T10:00:00Z", 1),
            ["2026-11-23T08:00:30Z"]
        );
    }

    #[test]
    fn weekdays_count_as_in_crontab() {
        // 2026-11-23 is a Monday.
        assert_eq!(
            fires("0 8 * * 1", "UTC", "2026-11-20T00:00:00Z", 1),
            ["2026-11-23T08:00:00Z"]
        );
        assert_eq!(
            fires("0 8 * * Mon", "UTC", "2026-11-20T00:00:00Z", 1),
            ["2026-11-23T08:00:00Z"]
        );
        for sunday in ["0", "7", "SUN"] {
            assert_eq!(
                fires(
                    &format!("0 8 * * {sunday}"),
                    "UTC",
                    "2026-11-20T00:00:00Z",
                    1
                ),
                ["2026-11-22T08:00:00Z"],
                "{sunday}"
            );
        }
        // Friday to Sunday, and weekdays with a step.
        assert_eq!(weekdays("5-7").unwrap(), "SUN,FRI,SAT");
        assert_eq!(weekdays("1-5").unwrap(), "MON,TUE,WED,THU,FRI");
        assert_eq!(weekdays("*/2").unwrap(), "SUN,TUE,THU,SAT");
        assert_eq!(weekdays("0-6").unwrap(), "*");
        assert!(weekdays("8").is_err());
        assert!(weekdays("5-1").is_err());
        assert!(weekdays("funday").is_err());
    }

    #[test]
    fn bad_expressions_and_timezones_say_why() {
        let e = Timing::new("* * *", "UTC").unwrap_err();
        assert!(e.0.contains("3 fields"), "{e}");
        assert!(Timing::new("61 * * * *", "UTC").is_err());
        assert!(Timing::new("* * * * * * 2030", "UTC").is_err());
        let e = Timing::new("* * * * *", "Mars/Olympus").unwrap_err();
        assert!(e.0.contains("unknown timezone"), "{e}");
        assert!(Timing::new("0 0 1 * *", "America/New_York").is_ok());
    }

    // Europe/Berlin: 2026-03-29 02:00 CET → 03:00 CEST; 2026-10-25 03:00 CEST → 02:00 CET.
    // America/New_York: 2026-03-08 02:00 EST → 03:00 EDT; 2026-11-01 02:00 EDT → 01:00 EST.

    #[test]
    fn berlin_spring_forward() {
        // 01:30 exists: it fires at 01:30 CET, and the next day at 01:30 CEST.
        assert_eq!(
            fires("30 1 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 2),
            ["2026-03-29T00:30:00Z", "2026-03-29T23:30:00Z"]
        );
        // 02:30 is skipped: it fires once at 03:00 CEST (01:00 UTC), then normally.
        assert_eq!(
            fires("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 2),
            ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
        );
    }

    #[test]
    fn berlin_fall_back() {
        // 01:30 is not repeated (the repeat is 02:00-02:59): once, in summer time.
        assert_eq!(
            fires("30 1 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2),
            ["2026-10-24T23:30:00Z", "2026-10-26T00:30:00Z"]
        );
        // 02:30 happens twice: it fires at the first (00:30 UTC), not at the second (01:30 UTC).
        assert_eq!(
            fires("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
        );
        // Starting between the two: the repeat does not fire.
        assert_eq!(
            fires("30 2 * * *", "Europe/Berlin", "2026-10-25T01:00:00Z", 1),
            ["2026-10-26T01:30:00Z"]
        );
    }

    #[test]
    fn new_york_spring_forward() {
        assert_eq!(
            fires("30 1 * * *", "America/New_York", "2026-03-07T12:00:00Z", 2),
            ["2026-03-08T06:30:00Z", "2026-03-09T05:30:00Z"]
        );
        // 02:30 does not exist: it fires at 03:00 EDT (07:00 UTC).
        assert_eq!(
            fires("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", 2),
            ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]
        );
    }

    #[test]
    fn new_york_fall_back() {
        // 01:30 happens twice: the first, 01:30 EDT (05:30 UTC), fires; 01:30 EST does not.
        assert_eq!(
            fires("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 2),
            ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
        );
        assert_eq!(
            fires("30 1 * * *", "America/New_York", "2026-11-01T06:00:00Z", 1),
            ["2026-11-02T06:30:00Z"]
        );
        // 02:30 is not repeated (01:00-01:59 is): once, in standard time.
        assert_eq!(
            fires("30 2 * * *", "America/New_York", "2026-10-31T12:00:00Z", 2),
            ["2026-11-01T07:30:00Z", "2026-11-02T07:30:00Z"]
        );
    }

    #[test]
    fn skipped_times_in_one_gap_merge_into_one_fire() {
        // Every 20 minutes: 02:00, 02:20, 02:40 are skipped and 03:00 exists; one fire at 03:00.
        assert_eq!(
            fires("*/20 * * * *", "Europe/Berlin", "2026-03-29T00:30:00Z", 4),
            [
                "2026-03-29T00:40:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-29T01:20:00Z",
                "2026-03-29T01:40:00Z"
            ]
        );
        // Hourly by the wall clock: 23 fires on the spring-forward day, 24 on the fall-back day.
        let t = Timing::new("0 * * * *", "Europe/Berlin").unwrap();
        let count = |from: &str, to: &str| {
            t.fires_after(utc(from))
                .take_while(|x| *x < utc(to))
                .count()
        };
        assert_eq!(count("2026-03-28T22:59:00Z", "2026-03-29T22:00:00Z"), 23);
        assert_eq!(count("2026-10-24T21:59:00Z", "2026-10-25T23:00:00Z"), 24);
    }
}
