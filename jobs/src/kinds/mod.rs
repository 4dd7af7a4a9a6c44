//! The four job kinds: one payload type each, validated before it is enqueued.
//!
//! A payload rejects unknown fields, so a typo is an error and not a silently
//! ignored option. Validation names the field at fault (`filters.from: …`).

mod aggregation;
mod analysis;
mod cleanup;
mod export;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use aggregation::{AggregationPayload, Granularity};
pub use analysis::{AnalysisPayload, ChainType};
pub use cleanup::{CleanupPayload, Retention};
pub use export::{ExportFilters, ExportFormat, ExportPayload, ExportSource};

use crate::QueueName;

/// A job kind: its payload type, and the queue it runs on.
pub trait JobKind: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The queue jobs of this kind go to.
    const QUEUE: QueueName;

    /// Checks what the types cannot: ranges, formats, relations between fields.
    fn validate(&self) -> Result<(), PayloadError>;
}

/// A payload that cannot be accepted, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", if field.is_empty() { message.clone() } else { format!("{field}: {message}") })]
pub struct PayloadError {
    /// The path of the field at fault (`filters.from`), empty for the whole payload.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
    /// The payload has the documented shape, and breaks a rule that relates two of its
    /// fields, or a field to the present time, which a JSON schema cannot state. The
    /// API answers these with 422 and every other payload error with 400, so that a
    /// request that fits the OpenAPI document is never a 400.
    pub beyond_schema: bool,
}

impl PayloadError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            beyond_schema: false,
        }
    }

    /// An error about `field` that no schema could have caught (see
    /// [`PayloadError::beyond_schema`]).
    pub fn beyond_schema(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            beyond_schema: true,
            ..Self::new(field, message)
        }
    }
}

/// Parses and validates a payload of kind `K`.
pub fn parse<K: JobKind>(payload: &serde_json::Value) -> Result<K, PayloadError> {
    let parsed: K = serde_path_to_error::deserialize(payload).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        PayloadError::new(field, e.into_inner().to_string())
    })?;
    parsed.validate()?;
    Ok(parsed)
}

/// Checks that `payload` is a valid payload for `queue`.
pub fn validate_payload(queue: QueueName, payload: &serde_json::Value) -> Result<(), PayloadError> {
    match queue {
        QueueName::Export => parse::<ExportPayload>(payload).map(drop),
        QueueName::Analysis => parse::<AnalysisPayload>(payload).map(drop),
        QueueName::Aggregation => parse::<AggregationPayload>(payload).map(drop),
        QueueName::Cleanup => parse::<CleanupPayload>(payload).map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_the_field() {
        let e = validate_payload(
            QueueName::Export,
            &json!({"source": "job_history", "format": "xml"}),
        )
        .unwrap_err();
        assert_eq!(e.field, "format");
        let e = validate_payload(
            QueueName::Export,
            &json!({"source": "job_history", "format": "csv", "filters": {"colour": 1}}),
        )
        .unwrap_err();
        assert_eq!(e.field, "filters.colour");
        assert!(e.message.contains("unknown field"), "{e}");
        let e = validate_payload(
            QueueName::Analysis,
            &json!({"dataset_id": "d1", "chain_type": "sentiment"}),
        )
        .unwrap_err();
        assert!(e.message.contains("missing field `columns`"), "{e}");
        let e = validate_payload(QueueName::Cleanup, &json!([1, 2])).unwrap_err();
        assert!(e.message.contains("invalid type"), "{e}");
    }

    #[test]
    fn every_kind_accepts_a_good_payload() {
        validate_payload(
            QueueName::Export,
            &json!({"source": "aggregates", "format": "jsonl", "gzip": true}),
        )
        .unwrap();
        validate_payload(
            QueueName::Analysis,
            &json!({"dataset_id": "ds_1", "columns": ["text"], "chain_type": "sentiment"}),
        )
        .unwrap();
        validate_payload(
            QueueName::Aggregation,
            &json!({"granularity": "hour", "bucket_start": "2026-11-22T10:00:00Z"}),
        )
        .unwrap();
        validate_payload(QueueName::Cleanup, &json!({"dry_run": true})).unwrap();
        validate_payload(QueueName::Cleanup, &json!({})).unwrap();
    }
}
