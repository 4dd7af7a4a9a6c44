//! Retention of finished jobs: how long `completed` and `failed` jobs stay in Redis,
//! and the archive they go to before they leave.
//!
//! Every queue has a [`Retention`]: a maximum age and a maximum count for each of the
//! two finished states (defaults: completed 1 hour / 10,000, failed 7 days / 100,000),
//! and an [`ArchiveMode`] saying which of them are archived first. A job may carry
//! limits of its own ([`JobRetention`], in its options), which win over the queue's.
//!
//! A worker enforces it continuously ([`Enforcer`]), in bounded steps of two scripts:
//! `retention_select.lua` picks a batch past retention without changing it, the
//! [`ArchiveSink`] writes the batch to the archive and commits, and only then
//! `retention_remove.lua` removes the jobs, and only those still in the state and
//! with the finish time they were picked with. A crash between the two leaves the jobs
//! in Redis and in the archive as the same record; the next step archives them again
//! (the sink upserts on the id) and removes them. This crate knows nothing of the
//! archive's storage: the worker implements the sink over SQL.

mod enforce;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{QueueError, Result};
use crate::job::JobState;

pub use enforce::{
    ArchiveError, ArchiveSink, Enforcer, EnforcerOptions, PassReport, RetentionError, StepReport,
};

/// The longest any retention age may be: ten years.
pub const MAX_AGE: Duration = Duration::from_secs(3650 * 24 * 3600);
/// The largest any retention count may be.
pub const MAX_COUNT: u64 = 100_000_000;

/// How long jobs of one finished state are kept: whichever limit is reached first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A job leaves once it finished this long ago.
    pub max_age: Duration,
    /// A job leaves once this many jobs of its state finished after it.
    pub max_count: u64,
}

impl Limits {
    /// Checks the ranges; `what` names the setting at fault.
    pub fn validate(&self, what: &str) -> Result<()> {
        if self.max_age > MAX_AGE {
            return invalid(&format!("{what} max age must be at most 10 years"));
        }
        if self.max_count > MAX_COUNT {
            return invalid(&format!("{what} max count must be at most {MAX_COUNT}"));
        }
        Ok(())
    }
}

/// Which finished jobs are written to the archive before they leave Redis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveMode {
    /// Completed and failed jobs.
    #[default]
    All,
    /// Failed jobs only; completed jobs are just removed.
    Failed,
    /// None: jobs past retention are just removed.
    None,
}

impl ArchiveMode {
    /// The lowercase name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveMode::All => "all",
            ArchiveMode::Failed => "failed",
            ArchiveMode::None => "none",
        }
    }

    /// Whether jobs of `state` are archived.
    #[must_use]
    pub fn archives(self, state: JobState) -> bool {
        match self {
            ArchiveMode::All => true,
            ArchiveMode::Failed => state == JobState::Failed,
            ArchiveMode::None => false,
        }
    }
}

impl fmt::Display for ArchiveMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ArchiveMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "all" => Ok(ArchiveMode::All),
            "failed" => Ok(ArchiveMode::Failed),
            "none" => Ok(ArchiveMode::None),
            other => Err(format!(
                "unknown archive mode {other:?}: expected all, failed or none"
            )),
        }
    }
}

/// The retention of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub completed: Limits,
    pub failed: Limits,
    pub archive: ArchiveMode,
}

impl Default for Retention {
    /// Completed jobs 1 hour / 10,000, failed jobs 7 days / 100,000, all archived:
    /// failures are what people come back to look at.
    fn default() -> Self {
        Self {
            completed: Limits {
                max_age: Duration::from_secs(3600),
                max_count: 10_000,
            },
            failed: Limits {
                max_age: Duration::from_secs(7 * 24 * 3600),
                max_count: 100_000,
            },
            archive: ArchiveMode::All,
        }
    }
}

impl Retention {
    /// The limits of `state` (completed or failed; any other state gets failed's).
    #[must_use]
    pub fn limits(&self, state: JobState) -> Limits {
        if state == JobState::Completed {
            self.completed
        } else {
            self.failed
        }
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        self.completed.validate("completed")?;
        self.failed.validate("failed")
    }
}

/// Limits of one job for one finished state; `None` keeps the queue's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsOverride {
    /// Kept at most this long after it finished, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_ms: Option<u64>,
    /// Kept while fewer than this many jobs of its state finished after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u64>,
}

impl LimitsOverride {
    fn is_empty(&self) -> bool {
        self.max_age_ms.is_none() && self.max_count.is_none()
    }

    fn validate(&self, what: &str) -> Result<()> {
        if let Some(a) = self.max_age_ms
            && u128::from(a) > MAX_AGE.as_millis()
        {
            return invalid(&format!(
                "retention.{what}.max_age_ms must be at most 10 years"
            ));
        }
        if let Some(c) = self.max_count
            && c > MAX_COUNT
        {
            return invalid(&format!(
                "retention.{what}.max_count must be at most {MAX_COUNT}"
            ));
        }
        Ok(())
    }
}

/// A job's own retention, set at submission; it wins over the queue's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRetention {
    #[serde(default, skip_serializing_if = "LimitsOverride::is_empty")]
    pub completed: LimitsOverride,
    #[serde(default, skip_serializing_if = "LimitsOverride::is_empty")]
    pub failed: LimitsOverride,
}

impl JobRetention {
    /// Whether it sets nothing (and so needs not be stored).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.completed.is_empty() && self.failed.is_empty()
    }

    /// Checks the ranges, naming the field at fault.
    pub fn validate(&self) -> Result<()> {
        self.completed.validate("completed")?;
        self.failed.validate("failed")
    }

    /// The form stored in the job's hash (field `retention`), which the scripts read:
    /// `completed age,completed count,failed age,failed count`, empty for the queue's.
    #[must_use]
    pub fn encode(&self) -> String {
        let n = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        format!(
            "{},{},{},{}",
            n(self.completed.max_age_ms),
            n(self.completed.max_count),
            n(self.failed.max_age_ms),
            n(self.failed.max_count)
        )
    }

    /// Reads the stored form back; `None` if it is not one.
    #[must_use]
    pub fn decode(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.split(',').collect();
        if parts.len() != 4 {
            return None;
        }
        let n = |p: &str| -> Option<Option<u64>> {
            if p.is_empty() {
                Some(None)
            } else {
                p.parse().ok().map(Some)
            }
        };
        Some(Self {
            completed: LimitsOverride {
                max_age_ms: n(parts[0])?,
                max_count: n(parts[1])?,
            },
            failed: LimitsOverride {
                max_age_ms: n(parts[2])?,
                max_count: n(parts[3])?,
            },
        })
    }
}

fn invalid<T>(msg: &str) -> Result<T> {
    Err(QueueError::InvalidOptions(msg.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_retention_round_trips_through_its_stored_form() {
        let r = JobRetention {
            completed: LimitsOverride {
                max_age_ms: Some(60_000),
                max_count: None,
            },
            failed: LimitsOverride {
                max_age_ms: None,
                max_count: Some(5),
            },
        };
        assert_eq!(r.encode(), "60000,,,5");
        assert_eq!(JobRetention::decode(&r.encode()), Some(r));
        assert_eq!(JobRetention::decode("1,2,3"), None);
        assert_eq!(JobRetention::decode("x,,,"), None);
        assert!(JobRetention::default().is_empty());
    }

    #[test]
    fn archive_modes() {
        assert!(ArchiveMode::All.archives(JobState::Completed));
        assert!(!ArchiveMode::Failed.archives(JobState::Completed));
        assert!(ArchiveMode::Failed.archives(JobState::Failed));
        assert!(!ArchiveMode::None.archives(JobState::Failed));
        for m in [ArchiveMode::All, ArchiveMode::Failed, ArchiveMode::None] {
            assert_eq!(m.as_str().parse::<ArchiveMode>().unwrap(), m);
        }
        assert!("some".parse::<ArchiveMode>().is_err());
    }

    #[test]
    fn limits_are_checked() {
        let mut r = Retention::default();
        assert!(r.validate().is_ok());
        r.failed.max_count = MAX_COUNT + 1;
        assert!(r.validate().unwrap_err().to_string().contains("failed"));
        let j = JobRetention {
            completed: LimitsOverride {
                max_age_ms: Some(u64::MAX),
                max_count: None,
            },
            ..Default::default()
        };
        assert!(
            j.validate()
                .unwrap_err()
                .to_string()
                .contains("retention.completed.max_age_ms")
        );
    }
}
