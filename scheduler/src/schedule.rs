//! The built-in schedules: what fires when, and with what payload.

use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, DurationRound, Utc};
use drover_jobs::QueueName;
use serde_json::{Value, json};

/// One schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Stable name: it keys the fire records and the idempotency of each fire.
    pub name: &'static str,
    /// Standard 5-field crontab (`min hour dom mon dow`) or 6 fields with seconds first.
    pub cron: &'static str,
    pub queue: QueueName,
    /// Builds the job's payload for a fire at the given time (UTC).
    pub payload: fn(DateTime<Utc>) -> Value,
    parsed: cron::Schedule,
}

/// A cron expression that cannot be parsed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadCron(pub String);

/// Parses a 5- or 6-field cron expression.
pub fn parse_cron(expr: &str) -> Result<cron::Schedule, BadCron> {
    let fields = expr.split_whitespace().count();
    let six = match fields {
        5 => format!("0 {expr}"),
        6 | 7 => expr.to_owned(),
        _ => {
            return Err(BadCron(format!(
                "{expr:?} has {fields} fields: expected 5 (or 6 with seconds)"
            )));
        }
    };
    cron::Schedule::from_str(&six).map_err(|e| BadCron(format!("{expr:?}: {e}")))
}

impl Schedule {
    fn new(
        name: &'static str,
        cron: &'static str,
        queue: QueueName,
        payload: fn(DateTime<Utc>) -> Value,
    ) -> Result<Self, BadCron> {
        Ok(Self {
            name,
            cron,
            queue,
            payload,
            parsed: parse_cron(cron)?,
        })
    }

    /// The fire times in `(after, until]`, at most `max`.
    pub fn fires_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        max: usize,
    ) -> Vec<DateTime<Utc>> {
        self.parsed
            .after(&after)
            .take_while(|t| *t <= until)
            .take(max)
            .collect()
    }

    /// The next fire after `t`.
    #[must_use]
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.parsed.after(&t).next()
    }
}

fn previous_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::hours(1)).unwrap_or(t) - Duration::hours(1)
}

fn previous_day(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::days(1)).unwrap_or(t) - Duration::days(1)
}

fn hourly_aggregation(t: DateTime<Utc>) -> Value {
    json!({ "granularity": "hour", "bucket_start": previous_hour(t) })
}

fn daily_aggregation(t: DateTime<Utc>) -> Value {
    json!({ "granularity": "day", "bucket_start": previous_day(t) })
}

fn daily_cleanup(_t: DateTime<Utc>) -> Value {
    json!({})
}

fn weekly_export(t: DateTime<Utc>) -> Value {
    let today = t.duration_trunc(Duration::days(1)).unwrap_or(t);
    let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
    json!({
        "source": "aggregates",
        "format": "csv",
        "filters": { "from": monday - Duration::days(7), "to": monday },
    })
}

/// The default schedules (UTC): hourly aggregation at :05, daily aggregation at 01:00,
/// daily cleanup at 02:00, weekly export of the week's aggregates on Monday at 08:00.
///
/// # Errors
/// Never with these expressions; the result type keeps a typo from becoming a panic.
pub fn defaults() -> Result<Vec<Schedule>, BadCron> {
    Ok(vec![
        Schedule::new(
            "hourly-aggregation",
            "5 * * * *",
            QueueName::Aggregation,
            hourly_aggregation,
        )?,
        Schedule::new(
            "daily-aggregation",
            "0 1 * * *",
            QueueName::Aggregation,
            daily_aggregation,
        )?,
        Schedule::new(
            "daily-cleanup",
            "0 2 * * *",
            QueueName::Cleanup,
            daily_cleanup,
        )?,
        Schedule::new(
            "weekly-export",
            "0 8 * * Mon",
            QueueName::Export,
            weekly_export,
        )?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use drover_jobs::kinds::validate_payload;

    #[test]
    fn defaults_parse_and_make_valid_payloads() {
        let t = Utc.with_ymd_and_hms(2026, 11, 16, 8, 0, 0).unwrap();
        for s in defaults().unwrap() {
            validate_payload(s.queue, &(s.payload)(t))
                .unwrap_or_else(|e| panic!("{}: {e}", s.name));
        }
    }

    #[test]
    fn fires_follow_the_crontab() {
        let s = defaults()
            .unwrap()
            .into_iter()
            .find(|s| s.name == "hourly-aggregation")
            .unwrap();
        let from = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
        let fires = s.fires_between(from, from + Duration::hours(3), 10);
        let minutes: Vec<_> = fires
            .iter()
            .map(|t| (t.format("%H:%M")).to_string())
            .collect();
        assert_eq!(minutes, ["10:05", "11:05", "12:05"]);
        assert_eq!(
            hourly_aggregation(fires[0])["bucket_start"],
            json!("2026-11-22T09:00:00Z")
        );
    }

    #[test]
    fn five_and_six_fields_are_accepted() {
        assert!(parse_cron("*/5 * * * *").is_ok());
        assert!(parse_cron("0 */5 * * * *").is_ok());
        assert!(parse_cron("* * *").is_err());
        assert!(parse_cron("61 * * * *").is_err());
    }
}
