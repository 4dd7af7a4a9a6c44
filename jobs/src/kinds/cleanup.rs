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
    /// Export files are deleted this long after they were made.
    #[serde(default = "Retention::default_exports_hours")]
    pub exports_hours: u32,
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
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            completed_hours: Self::default_completed_hours(),
            failed_hours: Self::default_failed_hours(),
            exports_hours: Self::default_exports_hours(),
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
        ] {
            if v > MAX_HOURS {
                return Err(PayloadError::new(
                    field,
                    format!("must be at most {MAX_HOURS}"),
                ));
            }
        }
        Ok(())
    }
}
