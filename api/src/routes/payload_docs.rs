//! How the payload of each queue's jobs looks, for the OpenAPI document.
//!
//! The payload types themselves live in `drover_jobs::kinds` (serde only; the domain does
//! not depend on poem). These mirrors give them a schema: `AddJobRequest.payload` is
//! one of them, depending on the queue in the path. They are never parsed: submitted
//! payloads are checked by `drover_jobs::kinds::validate_payload`. The tests below keep
//! each mirror in step with its payload type (same fields, valid examples).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{Example, ParseFromJSON, ParseResult, ToJSON, Type};
use poem_openapi::{Enum, Object};
use serde::Deserialize;

/// What an export reads.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename = "ExportSource", rename_all = "snake_case")]
pub enum ExportSourceDoc {
    JobHistory,
    Aggregates,
    AnalysisResults,
}

/// The file format of an export.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename = "ExportFormat", rename_all = "lowercase")]
pub enum ExportFormatDoc {
    Csv,
    Jsonl,
}

/// A queue's name.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename = "QueueName", rename_all = "lowercase")]
pub enum QueueNameDoc {
    Export,
    Analysis,
    Aggregation,
    Cleanup,
}

/// A finished job's state.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename = "FinishedState", rename_all = "lowercase")]
pub enum FinishedStateDoc {
    Completed,
    Failed,
}

/// Which rows to export; every filter is optional.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ExportFilters")]
pub struct ExportFiltersDoc {
    /// Only rows of this queue (job history, aggregates).
    pub queue: Option<QueueNameDoc>,
    /// Only jobs that ended in this state (`job_history` only).
    pub state: Option<FinishedStateDoc>,
    /// Rows at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Rows before this time (after `from`).
    pub to: Option<DateTime<Utc>>,
    /// Only the results of this analysis job (`analysis_results` only).
    pub job_id: Option<String>,
    /// At most this many rows.
    #[oai(validator(minimum(value = "1"), maximum(value = "50000000")))]
    pub limit: Option<u64>,
}

/// The payload of an `export` job: stream rows into a downloadable file.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ExportPayload", example)]
pub struct ExportPayloadDoc {
    pub source: ExportSourceDoc,
    /// Which rows (default: all).
    pub filters: Option<ExportFiltersDoc>,
    pub format: ExportFormatDoc,
    /// Compress the file with gzip (default false).
    pub gzip: Option<bool>,
}

fn export_example() -> ExportPayloadDoc {
    ExportPayloadDoc {
        source: ExportSourceDoc::JobHistory,
        filters: Some(ExportFiltersDoc {
            queue: Some(QueueNameDoc::Analysis),
            state: Some(FinishedStateDoc::Failed),
            from: DateTime::from_timestamp(1_767_225_600, 0),
            to: DateTime::from_timestamp(1_767_830_400, 0),
            job_id: None,
            limit: Some(10_000),
        }),
        format: ExportFormatDoc::Csv,
        gzip: Some(true),
    }
}

impl Example for ExportPayloadDoc {
    fn example() -> Self {
        export_example()
    }
}

/// The analysis to run.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename = "ChainType", rename_all = "snake_case")]
pub enum ChainTypeDoc {
    /// Lexicon-based sentiment of each text cell.
    Sentiment,
}

/// The payload of an `analysis` job: score the text of an uploaded dataset.
#[derive(Debug, Clone, Object)]
#[oai(rename = "AnalysisPayload", example)]
pub struct AnalysisPayloadDoc {
    /// The uploaded dataset to read.
    #[oai(validator(pattern = "^[A-Za-z0-9_-]{1,64}$"))]
    pub dataset_id: String,
    /// The columns whose text to score, each once.
    #[oai(validator(min_items = 1, max_items = 64, unique_items))]
    pub columns: Vec<String>,
    pub chain_type: ChainTypeDoc,
}

fn analysis_example() -> AnalysisPayloadDoc {
    AnalysisPayloadDoc {
        dataset_id: "ds_01JD4X".to_owned(),
        columns: vec!["review".to_owned(), "title".to_owned()],
        chain_type: ChainTypeDoc::Sentiment,
    }
}

impl Example for AnalysisPayloadDoc {
    fn example() -> Self {
        analysis_example()
    }
}

/// The size of an aggregation bucket.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename = "Granularity", rename_all = "lowercase")]
pub enum GranularityDoc {
    Hour,
    Day,
}

/// The payload of an `aggregation` job: (re)compute one bucket.
#[derive(Debug, Clone, Object)]
#[oai(rename = "AggregationPayload", example)]
pub struct AggregationPayloadDoc {
    pub granularity: GranularityDoc,
    /// The bucket's start, in UTC, on an hour (or day) boundary, not in the future.
    pub bucket_start: DateTime<Utc>,
}

fn aggregation_example() -> AggregationPayloadDoc {
    AggregationPayloadDoc {
        granularity: GranularityDoc::Hour,
        bucket_start: DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default(),
    }
}

impl Example for AggregationPayloadDoc {
    fn example() -> Self {
        aggregation_example()
    }
}

/// How long things are kept, in hours (at most 87840, ten years).
#[derive(Debug, Clone, Object)]
#[oai(rename = "Retention")]
pub struct RetentionDoc {
    /// Completed jobs stay in Redis this long, then move to the archive (default 24).
    #[oai(validator(minimum(value = "0"), maximum(value = "87840")))]
    pub completed_hours: Option<u32>,
    /// Failed jobs stay in Redis this long, then move to the archive (default 168).
    #[oai(validator(minimum(value = "0"), maximum(value = "87840")))]
    pub failed_hours: Option<u32>,
    /// Export files are deleted this long after they were made (default 168).
    #[oai(validator(minimum(value = "0"), maximum(value = "87840")))]
    pub exports_hours: Option<u32>,
    /// Archived jobs are deleted this many days after they finished (default 90).
    #[oai(validator(minimum(value = "0"), maximum(value = "3660")))]
    pub history_days: Option<u32>,
    /// Temporary files untouched this long belong to a killed writer (default 24).
    #[oai(validator(minimum(value = "0"), maximum(value = "87840")))]
    pub tmp_grace_hours: Option<u32>,
    /// Events older than this are trimmed from the event streams (default 168).
    #[oai(validator(minimum(value = "0"), maximum(value = "87840")))]
    pub events_hours: Option<u32>,
}

/// The payload of a `cleanup` job: archive and delete what is past retention.
#[derive(Debug, Clone, Object)]
#[oai(rename = "CleanupPayload", example)]
pub struct CleanupPayloadDoc {
    /// How long things are kept (default: the defaults of each field).
    pub retention: Option<RetentionDoc>,
    /// Report what would be removed, and remove nothing (default false).
    pub dry_run: Option<bool>,
}

fn cleanup_example() -> CleanupPayloadDoc {
    CleanupPayloadDoc {
        retention: Some(RetentionDoc {
            completed_hours: Some(24),
            failed_hours: Some(168),
            exports_hours: Some(168),
            history_days: Some(90),
            tmp_grace_hours: Some(24),
            events_hours: Some(168),
        }),
        dry_run: Some(true),
    }
}

impl Example for CleanupPayloadDoc {
    fn example() -> Self {
        cleanup_example()
    }
}

/// A job's payload: its shape depends on the queue, so it is one of the four payloads.
/// Kept as JSON; it is checked against the queue's job kind when submitted.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct QueuePayload(pub serde_json::Value);

impl Type for QueuePayload {
    const IS_REQUIRED: bool = true;
    type RawValueType = serde_json::Value;
    type RawElementValueType = serde_json::Value;

    fn name() -> Cow<'static, str> {
        "QueuePayload".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference("QueuePayload".to_owned())
    }

    fn register(registry: &mut Registry) {
        registry.create_schema::<Self, _>("QueuePayload".to_owned(), |registry| {
            ExportPayloadDoc::register(registry);
            AnalysisPayloadDoc::register(registry);
            AggregationPayloadDoc::register(registry);
            CleanupPayloadDoc::register(registry);
            MetaSchema {
                description: Some(
                    "The job's payload, whose shape depends on the queue: `ExportPayload` for \
                     `export`, `AnalysisPayload` for `analysis`, `AggregationPayload` for \
                     `aggregation`, `CleanupPayload` for `cleanup`.",
                ),
                one_of: vec![
                    ExportPayloadDoc::schema_ref(),
                    AnalysisPayloadDoc::schema_ref(),
                    AggregationPayloadDoc::schema_ref(),
                    CleanupPayloadDoc::schema_ref(),
                ],
                ..MetaSchema::ANY
            }
        });
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ParseFromJSON for QueuePayload {
    fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
        Ok(Self(value.unwrap_or_default()))
    }
}

impl ToJSON for QueuePayload {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use drover_jobs::QueueName;
    use drover_jobs::kinds::{
        AggregationPayload, AnalysisPayload, CleanupPayload, ExportPayload, validate_payload,
    };
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    use super::*;

    /// The field paths of a JSON object, nested objects included (absent fields are
    /// `null` in a mirror's JSON, and left out).
    fn paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        if let Value::Object(m) = v {
            for (k, v) in m.iter().filter(|(_, v)| !v.is_null()) {
                let p = format!("{prefix}{k}");
                paths(v, &format!("{p}."), out);
                out.insert(p);
            }
        }
    }

    /// The example documents every field, is a valid payload, and the domain type has
    /// no field the mirror lacks (it serialises back to the same field paths).
    fn in_step<Doc: ToJSON, Domain: Serialize + DeserializeOwned>(queue: QueueName, example: Doc) {
        let example = example.to_json().unwrap();
        validate_payload(queue, &example).unwrap();
        let domain: Domain = serde_json::from_value(example.clone()).unwrap();
        let (mut documented, mut actual) = (BTreeSet::new(), BTreeSet::new());
        paths(&example, "", &mut documented);
        paths(&serde_json::to_value(domain).unwrap(), "", &mut actual);
        assert_eq!(
            documented, actual,
            "{queue}: the mirror and the payload differ"
        );
    }

    #[test]
    fn mirrors_match_the_payload_types() {
        let mut export = export_example();
        // Every export filter, including the one the example's source does not take.
        if let Some(f) = export.filters.as_mut() {
            f.job_id = Some("01JD4X".to_owned());
        }
        export.source = ExportSourceDoc::AnalysisResults;
        if let Some(f) = export.filters.as_mut() {
            f.state = None;
        }
        let mut json = export.to_json().unwrap();
        json["filters"]["state"] = Value::from("failed");
        let domain: ExportPayload = serde_json::from_value(json.clone()).unwrap();
        let (mut documented, mut actual) = (BTreeSet::new(), BTreeSet::new());
        paths(&json, "", &mut documented);
        paths(&serde_json::to_value(domain).unwrap(), "", &mut actual);
        assert_eq!(
            documented, actual,
            "export: the mirror and the payload differ"
        );

        in_step::<_, ExportPayload>(QueueName::Export, export_example());
        in_step::<_, AnalysisPayload>(QueueName::Analysis, analysis_example());
        in_step::<_, AggregationPayload>(QueueName::Aggregation, aggregation_example());
        in_step::<_, CleanupPayload>(QueueName::Cleanup, cleanup_example());
    }
}
