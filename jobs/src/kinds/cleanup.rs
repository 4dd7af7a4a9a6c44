//! Cleanup: archive and delete what is past retention.

use serde::{Deserialize, Serialize};

use super::{JobKind, PayloadError};
use crate::QueueName;

/// How long things are kept, in hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Completed jobs stay in Redis this long, then move to the archive.
    #[serde(default = "Retention::default_completed_hours")]
    pub completed_hours: u32,
    /// Failed jobs stay in Redis this long, then move to the archive.
    #[serde(default = "Retention::default_failed_hours")]
    pub failed_hours: u32,
    /// Export files are deleted this long after they were made (or at their own
    /// expiry, whichever comes first).
    #[serde(default = "Retention::default_exports_hours")]
    pub exports_hours: u32,
    /// Archived jobs (`job_history` rows) are deleted this long after they finished.
    #[serde(default = "Retention::default_history_days")]
    pub history_days: u32,
    /// Temporary files (`*.part`) untouched this long belong to a killed writer.
    #[serde(default = "Retention::default_tmp_grace_hours")]
    pub tmp_grace_hours: u32,
    /// Events older than this are trimmed from the queues' event streams.
    #[serde(default = "Retention::default_events_hours")]
    pub events_hours: u32,
}

impl Retention {
    fn default_completed_hours() -> u32 {
        24
    }
    fn default_failed_hours() -> u32 {
        7 * 24
    }
    fn default_exports_hours() -> u32 {
        7 * 24
    }
    fn default_history_days() -> u32 {
        90
    }
    fn default_tmp_grace_hours() -> u32 {
        24
    }
    fn default_events_hours() -> u32 {
        7 * 24
    }
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            completed_hours: Self::default_completed_hours(),
            failed_hours: Self::default_failed_hours(),
            exports_hours: Self::default_exports_hours(),
            history_days: Self::default_history_days(),
            tmp_grace_hours: Self::default_tmp_grace_hours(),
            events_hours: Self::default_events_hours(),
        }
    }
}

/// The payload of a cleanup job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupPayload {
    #[serde(default)]
    pub retention: Retention,
    /// Report what would be removed, and remove nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Longest retention: ten years.
const MAX_HOURS: u32 = 10 * 366 * 24;

impl JobKind for CleanupPayload {
    const QUEUE: QueueName = QueueName::Cleanup;

    fn validate(&self) -> Result<(), PayloadError> {
        let r = &self.retention;
        for (field, v) in [
            ("retention.completed_hours", r.completed_hours),
            ("retention.failed_hours", r.failed_hours),
            ("retention.exports_hours", r.exports_hours),
            ("retention.history_days", r.history_days.saturating_mul(24)),
            ("retention.tmp_grace_hours", r.tmp_grace_hours),
            ("retention.events_hours", r.events_hours),
        ] {
            if v > MAX_HOURS {
                let max = if field == "retention.history_days" {
                    MAX_HOURS / 24
                } else {
                    MAX_HOURS
                };
                return Err(PayloadError::new(field, format!("must be at most {max}")));
            }
        }
        Ok(())
    }
}
