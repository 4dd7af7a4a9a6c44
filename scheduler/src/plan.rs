//! What to do about the fires that fell due: the missed-fire policy, as plain code over
//! plain inputs (the timing, the last handled fire, and the time now, from the caller's
//! clock).
//!
//! A fire is *on time* when it is due at most `grace` ago: it runs, whatever the
//! policy. A short Redis blip or a leader failover therefore costs no fire. A fire due
//! longer ago than that was *missed* (no scheduler could fire it), and the policy says
//! what happens:
//!
//! - `skip`: none of the missed fires runs; each is recorded as skipped;
//! - `once`: the latest missed fire runs (late), the others are skipped;
//! - `all`: the latest `catch_up_limit` missed fires run, oldest first; any older ones
//!   are skipped.
//!
//! More than [`SKIP_DETAIL`] skipped fires are recorded as one summary row (at the time
//! of the newest of them), so an outage of a per-second schedule does not write a row
//! per second. Fires older than [`MAX_LOOKBACK`] are not owed at all.

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};

use crate::timing::Timing;

/// How far back a scheduler looks for missed fires.
pub const MAX_LOOKBACK: Duration = Duration::days(7);
/// Most due fires looked at in one plan; a longer backlog is worked through in steps.
pub const MAX_SCAN: usize = 20_000;
/// Skipped fires beyond this many are recorded as one summary.
pub const SKIP_DETAIL: usize = 20;
/// Largest `catch_up_limit`.
pub const MAX_CATCH_UP: u32 = 1000;

/// What happens to missed fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissedFire {
    Skip,
    Once,
    All,
}

/// What happens to a fire while the previous fire's job has not finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Enqueue it anyway.
    Allow,
    /// Record it as skipped.
    Skip,
}

impl MissedFire {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            MissedFire::Skip => "skip",
            MissedFire::Once => "once",
            MissedFire::All => "all",
        }
    }
}

impl FromStr for MissedFire {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "skip" => Ok(Self::Skip),
            "once" => Ok(Self::Once),
            "all" => Ok(Self::All),
            other => Err(format!(
                "{other:?} is not a missed-fire policy: use skip, once or all"
            )),
        }
    }
}

impl Overlap {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Allow => "allow",
            Overlap::Skip => "skip",
        }
    }
}

impl FromStr for Overlap {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "allow" => Ok(Self::Allow),
            "skip" => Ok(Self::Skip),
            other => Err(format!(
                "{other:?} is not an overlap policy: use allow or skip"
            )),
        }
    }
}

/// One decision about one scheduled time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Enqueue the fire scheduled at this time. `missed` when it runs late by policy.
    Fire { at: DateTime<Utc>, missed: bool },
    /// Record the fire at this time as skipped, for this reason; `count` fires
    /// (more than one for a summary).
    Skip {
        at: DateTime<Utc>,
        reason: String,
        count: usize,
    },
}

impl Step {
    /// The scheduled time this step is about.
    #[must_use]
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Step::Fire { at, .. } | Step::Skip { at, .. } => *at,
        }
    }
}

/// What one schedule should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// In scheduled-time order.
    pub steps: Vec<Step>,
    /// Fires that were due longer than the grace ago.
    pub missed: usize,
}

/// The policy's inputs.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub missed_fire: MissedFire,
    pub catch_up_limit: u32,
    pub grace: Duration,
}

/// Decides about every fire in `(after, now]`.
#[must_use]
pub fn plan(timing: &Timing, policy: Policy, after: DateTime<Utc>, now: DateTime<Utc>) -> Plan {
    let after = after.max(now - MAX_LOOKBACK);
    let due: Vec<DateTime<Utc>> = timing
        .fires_after(after)
        .take_while(|t| *t <= now)
        .take(MAX_SCAN)
        .collect();
    // A backlog longer than one scan: the newest fires are not in view yet, so nothing
    // missed may run in this step (the policy picks among the newest).
    let partial = due.len() == MAX_SCAN;
    let split = due.partition_point(|t| now - *t > policy.grace);
    let (missed, on_time) = due.split_at(if partial { due.len() } else { split });
    let run = if partial {
        0
    } else {
        match policy.missed_fire {
            MissedFire::Skip => 0,
            MissedFire::Once => missed.len().min(1),
            MissedFire::All => missed.len().min(policy.catch_up_limit as usize),
        }
    };
    let (skipped, caught_up) = missed.split_at(missed.len() - run);
    let mut steps = Vec::with_capacity(SKIP_DETAIL + run + on_time.len());
    let reason = match policy.missed_fire {
        MissedFire::Skip => "missed: no scheduler ran at its time (policy skip)".to_owned(),
        MissedFire::Once => "missed: a later missed fire ran instead (policy once)".to_owned(),
        MissedFire::All => format!(
            "missed: older than the {} newest missed fires that ran (policy all)",
            policy.catch_up_limit
        ),
    };
    if skipped.len() > SKIP_DETAIL {
        let (first, last) = (skipped[0], skipped[skipped.len() - 1]);
        steps.push(Step::Skip {
            at: last,
            reason: format!(
                "{reason}; {} fires from {} to {}",
                skipped.len(),
                first.to_rfc3339(),
                last.to_rfc3339()
            ),
            count: skipped.len(),
        });
    } else {
        steps.extend(skipped.iter().map(|at| Step::Skip {
            at: *at,
            reason: reason.clone(),
            count: 1,
        }));
    }
    steps.extend(caught_up.iter().map(|at| Step::Fire {
        at: *at,
        missed: true,
    }));
    steps.extend(on_time.iter().map(|at| Step::Fire {
        at: *at,
        missed: false,
    }));
    Plan {
        steps,
        missed: missed.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn policy(m: MissedFire, limit: u32) -> Policy {
        Policy {
            missed_fire: m,
            catch_up_limit: limit,
            grace: Duration::seconds(60),
        }
    }

    /// Fires (`F`, late: `f`) and skips (`S<count>`) as `HH:MM` strings.
    fn shape(p: &Plan) -> Vec<String> {
        p.steps
            .iter()
            .map(|s| match s {
                Step::Fire { at, missed } => {
                    format!("{}{}", if *missed { "f" } else { "F" }, at.format("%H:%M"))
                }
                Step::Skip { at, count, .. } => format!("S{count}@{}", at.format("%H:%M")),
            })
            .collect()
    }

    #[test]
    fn on_time_fires_run_under_every_policy() {
        let hourly = Timing::new("0 * * * *", "UTC").unwrap();
        // The clock says 10:00:30: the 10:00 fire is 30 s late, within the grace.
        let now = utc("2026-11-22T10:00:30Z");
        for m in [MissedFire::Skip, MissedFire::Once, MissedFire::All] {
            let p = plan(&hourly, policy(m, 5), utc("2026-11-22T09:00:00Z"), now);
            assert_eq!(shape(&p), ["F10:00"], "{m:?}");
            assert_eq!(p.missed, 0);
        }
        // Nothing due: nothing to do.
        let p = plan(
            &hourly,
            policy(MissedFire::All, 5),
            utc("2026-11-22T10:00:00Z"),
            now,
        );
        assert!(p.steps.is_empty());
    }

    #[test]
    fn missed_fires_follow_the_policy() {
        let hourly = Timing::new("0 * * * *", "UTC").unwrap();
        // Last fire 06:00; down until 09:30: 07:00, 08:00 and 09:00 were missed.
        let (last, now) = (utc("2026-11-22T06:00:00Z"), utc("2026-11-22T09:30:00Z"));
        let p = plan(&hourly, policy(MissedFire::Skip, 5), last, now);
        assert_eq!(shape(&p), ["S1@07:00", "S1@08:00", "S1@09:00"]);
        assert_eq!(p.missed, 3);
        let p = plan(&hourly, policy(MissedFire::Once, 5), last, now);
        assert_eq!(shape(&p), ["S1@07:00", "S1@08:00", "f09:00"]);
        let p = plan(&hourly, policy(MissedFire::All, 5), last, now);
        assert_eq!(shape(&p), ["f07:00", "f08:00", "f09:00"]);
        // Back at 10:00:10: 07-09 missed, 10:00 on time.
        let p = plan(
            &hourly,
            policy(MissedFire::Once, 5),
            last,
            utc("2026-11-22T10:00:10Z"),
        );
        assert_eq!(shape(&p), ["S1@07:00", "S1@08:00", "f09:00", "F10:00"]);
    }

    #[test]
    fn all_is_bounded_by_the_catch_up_limit() {
        let minutely = Timing::new("* * * * *", "UTC").unwrap();
        let last = utc("2026-11-22T10:00:00Z");
        let now = utc("2026-11-22T10:10:30Z"); // 10:01 … 10:09 missed, 10:10 on time
        let p = plan(&minutely, policy(MissedFire::All, 3), last, now);
        assert_eq!(p.missed, 9);
        let s = shape(&p);
        assert_eq!(
            &s[..6],
            [
                "S1@10:01", "S1@10:02", "S1@10:03", "S1@10:04", "S1@10:05", "S1@10:06"
            ]
        );
        assert_eq!(&s[6..], ["f10:07", "f10:08", "f10:09", "F10:10"]);
        // A limit of 0 makes `all` skip like `skip`.
        let p = plan(&minutely, policy(MissedFire::All, 0), last, now);
        assert_eq!(
            p.steps
                .iter()
                .filter(|s| matches!(s, Step::Fire { .. }))
                .count(),
            1
        );
    }

    #[test]
    fn long_outages_are_summarised_and_bounded() {
        let minutely = Timing::new("* * * * *", "UTC").unwrap();
        let last = utc("2026-11-22T00:00:00Z");
        let now = utc("2026-11-22T10:00:30Z"); // 600 fires due; 10:00 on time
        let p = plan(&minutely, policy(MissedFire::All, 10), last, now);
        assert_eq!(p.missed, 599);
        assert_eq!(p.steps.len(), 1 + 10 + 1);
        match &p.steps[0] {
            Step::Skip { at, count, reason } => {
                assert_eq!(*count, 589);
                assert_eq!(*at, utc("2026-11-22T09:49:00Z"));
                assert!(reason.contains("589 fires"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // A backlog older than the lookback is not owed.
        let p = plan(
            &minutely,
            policy(MissedFire::Skip, 10),
            utc("2026-01-01T00:00:00Z"),
            now,
        );
        assert!(p.steps.iter().all(|s| s.at() > now - MAX_LOOKBACK));
        // Per second over a day: more than one scan; the first step runs nothing.
        let secondly = Timing::new("* * * * * *", "UTC").unwrap();
        let p = plan(
            &secondly,
            policy(MissedFire::All, 10),
            now - Duration::days(1),
            now,
        );
        assert_eq!(p.missed, MAX_SCAN);
        assert_eq!(shape(&p).len(), 1);
        assert!(matches!(
            p.steps[0],
            Step::Skip {
                count: MAX_SCAN,
                ..
            }
        ));
    }
}
