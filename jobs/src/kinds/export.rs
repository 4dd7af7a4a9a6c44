//! Export: stream rows from the database into a downloadable file.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{JobKind, PayloadError};
use crate::QueueName;

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportSource {
    /// Archived finished jobs.
    JobHistory,
    /// Hourly and daily aggregates.
    Aggregates,
    /// Per-column results of sentiment analyses.
    AnalysisResults,
}

/// The file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

/// Which rows to export; every filter is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportFilters {
    /// Only rows of this queue (job history, aggregates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueName>,
    /// Only jobs that ended in this state (job history): `completed` or `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Rows at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// Rows before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    /// Only the results of this analysis job (analysis results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// At most this many rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// The payload of an export job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportPayload {
    pub source: ExportSource,
    #[serde(default)]
    pub filters: ExportFilters,
    pub format: ExportFormat,
    /// Compress the file with gzip.
    #[serde(default)]
    pub gzip: bool,
}

/// Largest export, in rows.
pub const MAX_EXPORT_ROWS: u64 = 50_000_000;

impl JobKind for ExportPayload {
    const QUEUE: QueueName = QueueName::Export;

    fn validate(&self) -> Result<(), PayloadError> {
        let f = &self.filters;
        if let (Some(from), Some(to)) = (f.from, f.to)
            && from >= to
        {
            return Err(PayloadError::beyond_schema(
                "filters.to",
                "must be after filters.from",
            ));
        }
        if let Some(state) = &f.state {
            if self.source != ExportSource::JobHistory {
                return Err(PayloadError::new(
                    "filters.state",
                    "applies to the job_history source only",
                ));
            }
            if state != "completed" && state != "failed" {
                return Err(PayloadError::new(
                    "filters.state",
                    "must be completed or failed",
                ));
            }
        }
        if f.queue.is_some() && self.source == ExportSource::AnalysisResults {
            return Err(PayloadError::new(
                "filters.queue",
                "applies to the job_history and aggregates sources only",
            ));
        }
        if f.job_id.is_some() && self.source != ExportSource::AnalysisResults {
            return Err(PayloadError::new(
                "filters.job_id",
                "applies to the analysis_results source only",
            ));
        }
        if let Some(limit) = f.limit
            && !(1..=MAX_EXPORT_ROWS).contains(&limit)
        {
            return Err(PayloadError::new(
                "filters.limit",
                format!("must be between 1 and {MAX_EXPORT_ROWS}"),
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
    fn filters_are_checked() {
        let e = validate_payload(
            QueueName::Export,
            &json!({"source": "aggregates", "format": "csv",
                    "filters": {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}}),
        )
        .unwrap_err();
        assert_eq!(e.field, "filters.to");
        let e = validate_payload(
            QueueName::Export,
            &json!({"source": "aggregates", "format": "csv", "filters": {"state": "failed"}}),
        )
        .unwrap_err();
        assert_eq!(e.field, "filters.state");
        let e = validate_payload(
            QueueName::Export,
            &json!({"source": "job_history", "format": "csv", "filters": {"queue": "nope"}}),
        )
        .unwrap_err();
        assert_eq!(e.field, "filters.queue");
    }
}
