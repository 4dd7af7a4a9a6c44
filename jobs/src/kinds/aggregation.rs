//! Aggregation: roll counters and results up into hourly or daily buckets.

use chrono::{DateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::{JobKind, PayloadError};
use crate::QueueName;

/// The size of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Hour,
    Day,
}

impl Granularity {
    /// The name, as in payloads.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
    }

    /// The bucket's length.
    #[must_use]
    pub fn duration(self) -> chrono::Duration {
        match self {
            Granularity::Hour => chrono::Duration::hours(1),
            Granularity::Day => chrono::Duration::days(1),
        }
    }
}

/// The payload of an aggregation job: which bucket to (re)compute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregationPayload {
    pub granularity: Granularity,
    /// The bucket's start, in UTC, on a bucket boundary.
    pub bucket_start: DateTime<Utc>,
}

impl JobKind for AggregationPayload {
    const QUEUE: QueueName = QueueName::Aggregation;

    fn validate(&self) -> Result<(), PayloadError> {
        let t = self.bucket_start;
        let aligned = match self.granularity {
            Granularity::Hour => t.minute() == 0 && t.second() == 0 && t.nanosecond() == 0,
            Granularity::Day => {
                t.hour() == 0 && t.minute() == 0 && t.second() == 0 && t.nanosecond() == 0
            }
        };
        if !aligned {
            return Err(PayloadError::new(
                "bucket_start",
                format!("must be the start of a UTC {}", self.granularity.as_str()),
            ));
        }
        if t > Utc::now() {
            return Err(PayloadError::beyond_schema(
                "bucket_start",
                "must not be in the future",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::validate_payload;
    use super::*;
    use serde_json::json;

    #[test]
    fn buckets_must_be_aligned_and_past() {
        let bad = |v| {
            validate_payload(QueueName::Aggregation, &v)
                .unwrap_err()
                .field
        };
        assert_eq!(
            bad(json!({"granularity": "hour", "bucket_start": "2026-01-01T10:30:00Z"})),
            "bucket_start"
        );
        assert_eq!(
            bad(json!({"granularity": "day", "bucket_start": "2026-01-01T10:00:00Z"})),
            "bucket_start"
        );
        assert_eq!(
            bad(json!({"granularity": "day", "bucket_start": "2999-01-01T00:00:00Z"})),
            "bucket_start"
        );
        assert_eq!(
            bad(json!({"granularity": "week", "bucket_start": "2026-01-01T00:00:00Z"})),
            "granularity"
        );
    }
}
