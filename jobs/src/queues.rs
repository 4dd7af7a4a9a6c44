//! The platform's queues: one per job kind, each with its retry defaults.

use std::fmt;
use std::str::FromStr;

use drover_queue::{Backoff, BackoffKind, QueueDefaults};
use serde::{Deserialize, Serialize};

/// A queue of the platform. Its name is stable: jobs in Redis refer to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueName {
    /// Streams rows from the database into a downloadable file.
    Export,
    /// Scores the text of an uploaded dataset for sentiment.
    Analysis,
    /// Rolls counters and results up into hourly and daily aggregates.
    Aggregation,
    /// Archives and deletes what is past retention.
    Cleanup,
}

impl QueueName {
    /// Every queue.
    pub const ALL: [QueueName; 4] = [
        QueueName::Export,
        QueueName::Analysis,
        QueueName::Aggregation,
        QueueName::Cleanup,
    ];

    /// The queue's name, as in URLs and Redis keys.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Export => "export",
            QueueName::Analysis => "analysis",
            QueueName::Aggregation => "aggregation",
            QueueName::Cleanup => "cleanup",
        }
    }

    /// Attempts and backoff for jobs that do not say otherwise.
    ///
    /// Exports and analyses read and write files and the database: a few attempts,
    /// seconds apart. Aggregations are cheap and idempotent: more attempts. Cleanup
    /// runs nightly: a slow retry is fine.
    #[must_use]
    pub fn defaults(self) -> QueueDefaults {
        let backoff = |delay_ms: u64, max_delay_ms: u64| Backoff {
            kind: BackoffKind::Exponential,
            delay_ms,
            factor: 2.0,
            max_delay_ms,
            jitter: 0.2,
        };
        match self {
            QueueName::Export => QueueDefaults {
                max_attempts: 3,
                backoff: backoff(5_000, 300_000),
            },
            QueueName::Analysis => QueueDefaults {
                max_attempts: 3,
                backoff: backoff(10_000, 600_000),
            },
            QueueName::Aggregation => QueueDefaults {
                max_attempts: 5,
                backoff: backoff(2_000, 120_000),
            },
            QueueName::Cleanup => QueueDefaults {
                max_attempts: 3,
                backoff: backoff(30_000, 1_800_000),
            },
        }
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of the platform's queues.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown queue {0:?}: the queues are export, analysis, aggregation and cleanup")]
pub struct UnknownQueue(pub String);

impl FromStr for QueueName {
    type Err = UnknownQueue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        QueueName::ALL
            .into_iter()
            .find(|q| q.as_str() == s)
            .ok_or_else(|| UnknownQueue(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_defaults_are_valid() {
        for q in QueueName::ALL {
            assert_eq!(q.as_str().parse::<QueueName>().unwrap(), q);
            q.defaults().backoff.validate().unwrap();
            drover_queue::keys::validate_name(q.as_str()).unwrap();
        }
        assert!("exports".parse::<QueueName>().is_err());
    }
}
