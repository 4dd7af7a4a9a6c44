//! The scheduler's Prometheus series (served with `/health` and `/ready` by
//! `drover_jobs::probes`).
//!
//! | series | type | labels | meaning |
//! |---|---|---|---|
//! | `drover_schedule_fires_total` | counter | `schedule`, `trigger` (`schedule`, `manual`) | fires enqueued |
//! | `drover_schedule_fires_skipped_total` | counter | `schedule`, `reason` (`missed`, `overlap`, `invalid`) | fires recorded as skipped |
//! | `drover_schedule_fires_missed_total` | counter | `schedule` | fires found more than the grace late (whatever the policy then did) |
//! | `drover_schedule_lateness_seconds` | histogram | `schedule` | enqueue time − scheduled time, of scheduled fires |
//! | `drover_scheduler_leader` | gauge | — | 1 while this replica leads |

use chrono::{DateTime, Utc};
use drover_entities::schedule_fire;

pub const FIRES: &str = "drover_schedule_fires_total";
pub const SKIPPED: &str = "drover_schedule_fires_skipped_total";
pub const MISSED: &str = "drover_schedule_fires_missed_total";
pub const LATENESS: &str = "drover_schedule_lateness_seconds";
pub const LEADER: &str = "drover_scheduler_leader";

/// Creates the series of schedule `schedule` at zero (a no-op once they exist), so
/// they are scraped before its first fire, and an alert on misses sees a zero, not
/// an absent series.
pub fn zero_schedule_series(schedule: &str) {
    for trigger in ["schedule", "manual"] {
        metrics::counter!(FIRES, "schedule" => schedule.to_owned(), "trigger" => trigger)
            .increment(0);
    }
    metrics::counter!(MISSED, "schedule" => schedule.to_owned()).increment(0);
    let _ = metrics::histogram!(LATENESS, "schedule" => schedule.to_owned());
}

/// Counts an enqueued fire, and its lateness if the clock fired it.
pub fn fired(fire: &schedule_fire::Model, enqueued_at: DateTime<Utc>) {
    let trigger = if fire.manual { "manual" } else { "schedule" };
    metrics::counter!(FIRES, "schedule" => fire.schedule_name.clone(), "trigger" => trigger)
        .increment(1);
    if !fire.manual {
        let late = (enqueued_at - fire.scheduled_at)
            .to_std()
            .unwrap_or_default()
            .as_secs_f64();
        metrics::histogram!(LATENESS, "schedule" => fire.schedule_name.clone()).record(late);
    }
}

/// Counts skipped fires; `reason` is the recorded reason or its kind.
pub fn skipped(schedule: &str, reason: &str, count: usize) {
    let kind = if reason.starts_with("overlap") {
        "overlap"
    } else if reason.starts_with("invalid") {
        "invalid"
    } else {
        "missed"
    };
    metrics::counter!(SKIPPED, "schedule" => schedule.to_owned(), "reason" => kind)
        .increment(count as u64);
}

/// Counts fires found missed.
pub fn missed(schedule: &str, count: usize) {
    if count > 0 {
        metrics::counter!(MISSED, "schedule" => schedule.to_owned()).increment(count as u64);
    }
}

/// Sets the leader flag.
pub fn leader(leading: bool) {
    metrics::gauge!(LEADER).set(if leading { 1.0 } else { 0.0 });
}
