//! Analysis: score the text of an uploaded dataset for sentiment.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{JobKind, PayloadError};
use crate::QueueName;

/// The analysis to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainType {
    /// Lexicon-based sentiment of each text cell.
    Sentiment,
}

/// The payload of an analysis job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisPayload {
    /// The uploaded dataset to read.
    pub dataset_id: String,
    /// The columns whose text to score.
    pub columns: Vec<String>,
    pub chain_type: ChainType,
}

/// Most columns one analysis may score.
pub const MAX_COLUMNS: usize = 64;

impl JobKind for AnalysisPayload {
    const QUEUE: QueueName = QueueName::Analysis;

    fn validate(&self) -> Result<(), PayloadError> {
        let id_ok = !self.dataset_id.is_empty()
            && self.dataset_id.len() <= 64
            && self
                .dataset_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(PayloadError::new(
                "dataset_id",
                "must be 1 to 64 characters among letters, digits, '-' and '_'",
            ));
        }
        if self.columns.is_empty() || self.columns.len() > MAX_COLUMNS {
            return Err(PayloadError::new(
                "columns",
                format!("must name 1 to {MAX_COLUMNS} columns"),
            ));
        }
        let mut seen = HashSet::new();
        for (i, c) in self.columns.iter().enumerate() {
            if c.trim().is_empty() || c.chars().count() > 256 {
                return Err(PayloadError::new(
                    format!("columns[{i}]"),
                    "must be a column name of 1 to 256 characters, not only spaces",
                ));
            }
            if !seen.insert(c) {
                return Err(PayloadError::new(
                    format!("columns[{i}]"),
                    format!("{c:?} is listed twice"),
                ));
            }
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
    fn columns_and_ids_are_checked() {
        let bad = |v| validate_payload(QueueName::Analysis, &v).unwrap_err().field;
        assert_eq!(
            bad(json!({"dataset_id": "../etc", "columns": ["a"], "chain_type": "sentiment"})),
            "dataset_id"
        );
        assert_eq!(
            bad(json!({"dataset_id": "d", "columns": [], "chain_type": "sentiment"})),
            "columns"
        );
        assert_eq!(
            bad(json!({"dataset_id": "d", "columns": ["a", "a"], "chain_type": "sentiment"})),
            "columns[1]"
        );
        assert_eq!(
            bad(json!({"dataset_id": "d", "columns": ["a"], "chain_type": "summary"})),
            "chain_type"
        );
    }
}
