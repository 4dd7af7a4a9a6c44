//! How the payload of each queue's jobs looks, for the OpenAPI document.
//!
//! The payload types themselves live in `drover_jobs::kinds` (serde only; the domain does
//! not depend on poem). These mirrors give them a schema: each queue's typed submit
//! operation (`add_export_job`, …) takes its queue's payload. They are never parsed: submitted
//! payloads are checked by `drover_jobs::kinds::validate_payload`. The tests below keep
//! each mirror in step with its payload type (same fields, valid examples).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{Example, ParseFromJSON, ParseResult, ToJSON, Type};
use poem_openapi::{Enum, Object};
use serde::Deserialize;

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

/// The archive of finished jobs.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename = "JobHistorySource", rename_all = "snake_case")]
pub enum JobHistorySourceDoc {
    JobHistory,
}

/// The hourly and daily aggregates.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename = "AggregatesSource", rename_all = "snake_case")]
pub enum AggregatesSourceDoc {
    Aggregates,
}

/// The per-column results of sentiment analyses.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename = "AnalysisResultsSource", rename_all = "snake_case")]
pub enum AnalysisResultsSourceDoc {
    AnalysisResults,
}

/// Which archived jobs to export; every filter is optional.
#[derive(Debug, Clone, Object)]
#[oai(rename = "JobHistoryFilters")]
pub struct JobHistoryFiltersDoc {
    /// Only jobs of this queue.
    pub queue: Option<QueueNameDoc>,
    /// Only jobs that ended in this state.
    pub state: Option<FinishedStateDoc>,
    /// Jobs that finished at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Jobs that finished before this time (after `from`, else 422).
    pub to: Option<DateTime<Utc>>,
    /// At most this many rows.
    #[oai(validator(minimum(value = "1"), maximum(value = "50000000")))]
    pub limit: Option<u64>,
}

/// Which aggregates to export; every filter is optional.
#[derive(Debug, Clone, Object)]
#[oai(rename = "AggregatesFilters")]
pub struct AggregatesFiltersDoc {
    /// Only the buckets of this queue.
    pub queue: Option<QueueNameDoc>,
    /// Buckets that start at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Buckets that start before this time (after `from`, else 422).
    pub to: Option<DateTime<Utc>>,
    /// At most this many rows.
    #[oai(validator(minimum(value = "1"), maximum(value = "50000000")))]
    pub limit: Option<u64>,
}

/// Which analysis results to export; every filter is optional.
#[derive(Debug, Clone, Object)]
#[oai(rename = "AnalysisResultsFilters")]
pub struct AnalysisResultsFiltersDoc {
    /// Results made at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Results made before this time (after `from`, else 422).
    pub to: Option<DateTime<Utc>>,
    /// Only the results of this analysis job.
    pub job_id: Option<String>,
    /// At most this many rows.
    #[oai(validator(minimum(value = "1"), maximum(value = "50000000")))]
    pub limit: Option<u64>,
}

/// An export of the archive of finished jobs.
#[derive(Debug, Clone, Object)]
#[oai(rename = "JobHistoryExport", example)]
pub struct JobHistoryExportDoc {
    pub source: JobHistorySourceDoc,
    /// Which rows (default: all).
    pub filters: Option<JobHistoryFiltersDoc>,
    pub format: ExportFormatDoc,
    /// Compress the file with gzip (default false).
    pub gzip: Option<bool>,
}

/// An export of the aggregates.
#[derive(Debug, Clone, Object)]
#[oai(rename = "AggregatesExport", example)]
pub struct AggregatesExportDoc {
    pub source: AggregatesSourceDoc,
    /// Which rows (default: all).
    pub filters: Option<AggregatesFiltersDoc>,
    pub format: ExportFormatDoc,
    /// Compress the file with gzip (default false).
    pub gzip: Option<bool>,
}

/// An export of analysis results.
#[derive(Debug, Clone, Object)]
#[oai(rename = "AnalysisResultsExport", example)]
pub struct AnalysisResultsExportDoc {
    pub source: AnalysisResultsSourceDoc,
    /// Which rows (default: all).
    pub filters: Option<AnalysisResultsFiltersDoc>,
    pub format: ExportFormatDoc,
    /// Compress the file with gzip (default false).
    pub gzip: Option<bool>,
}

fn job_history_export_example() -> JobHistoryExportDoc {
    JobHistoryExportDoc {
        source: JobHistorySourceDoc::JobHistory,
        filters: Some(JobHistoryFiltersDoc {
            queue: Some(QueueNameDoc::Analysis),
            state: Some(FinishedStateDoc::Failed),
            from: DateTime::from_timestamp(1_767_225_600, 0),
            to: DateTime::from_timestamp(1_767_830_400, 0),
            limit: Some(10_000),
        }),
        format: ExportFormatDoc::Csv,
        gzip: Some(true),
    }
}

fn aggregates_export_example() -> AggregatesExportDoc {
    AggregatesExportDoc {
        source: AggregatesSourceDoc::Aggregates,
        filters: Some(AggregatesFiltersDoc {
            queue: Some(QueueNameDoc::Export),
            from: DateTime::from_timestamp(1_767_225_600, 0),
            to: DateTime::from_timestamp(1_767_830_400, 0),
            limit: Some(1_000),
        }),
        format: ExportFormatDoc::Jsonl,
        gzip: Some(false),
    }
}

fn analysis_results_export_example() -> AnalysisResultsExportDoc {
    AnalysisResultsExportDoc {
        source: AnalysisResultsSourceDoc::AnalysisResults,
        filters: Some(AnalysisResultsFiltersDoc {
            from: DateTime::from_timestamp(1_767_225_600, 0),
            to: DateTime::from_timestamp(1_767_830_400, 0),
            job_id: Some("01JD4X8Q7W3K9N2M5P6R8T0V1Y".to_owned()),
            limit: Some(100_000),
        }),
        format: ExportFormatDoc::Csv,
        gzip: Some(true),
    }
}

impl Example for JobHistoryExportDoc {
    fn example() -> Self {
        job_history_export_example()
    }
}

impl Example for AggregatesExportDoc {
    fn example() -> Self {
        aggregates_export_example()
    }
}

impl Example for AnalysisResultsExportDoc {
    fn example() -> Self {
        analysis_results_export_example()
    }
}

/// The payload of an `export` job, one shape per source: each source takes its own
/// filters (a filter of another source is a 400).
pub struct ExportPayloadDoc;

impl Type for ExportPayloadDoc {
    const IS_REQUIRED: bool = true;
    type RawValueType = ();
    type RawElementValueType = ();

    fn name() -> Cow<'static, str> {
        "ExportPayload".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference("ExportPayload".to_owned())
    }

    fn register(registry: &mut Registry) {
        registry.create_schema::<Self, _>("ExportPayload".to_owned(), |registry| {
            JobHistoryExportDoc::register(registry);
            AggregatesExportDoc::register(registry);
            AnalysisResultsExportDoc::register(registry);
            MetaSchema {
                description: Some(
                    "The payload of an `export` job: stream rows into a downloadable file. \
                     One shape per `source`, each with the filters that source takes.",
                ),
                one_of: vec![
                    JobHistoryExportDoc::schema_ref(),
                    AggregatesExportDoc::schema_ref(),
                    AnalysisResultsExportDoc::schema_ref(),
                ],
                ..MetaSchema::ANY
            }
        });
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        None
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::empty())
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
    pub columns: Vec<ColumnNameDoc>,
    pub chain_type: ChainTypeDoc,
}

/// A column of a dataset: 1 to 256 characters, not only spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(transparent)]
pub struct ColumnNameDoc(pub String);

impl Type for ColumnNameDoc {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "ColumnName".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some("A column of the dataset: 1 to 256 characters, not only spaces."),
            min_length: Some(1),
            max_length: Some(256),
            pattern: Some(r"\S".to_owned()),
            ..MetaSchema::new("string")
        }))
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

impl ParseFromJSON for ColumnNameDoc {
    fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
        match value {
            Some(serde_json::Value::String(s)) => Ok(Self(s)),
            _ => Err(poem_openapi::types::ParseError::expected_type(
                value.unwrap_or_default(),
            )),
        }
    }
}

impl ToJSON for ColumnNameDoc {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(serde_json::Value::String(self.0.clone()))
    }
}

fn analysis_example() -> AnalysisPayloadDoc {
    AnalysisPayloadDoc {
        dataset_id: "ds_01JD4X".to_owned(),
        columns: vec![
            ColumnNameDoc("review".to_owned()),
            ColumnNameDoc("title".to_owned()),
        ],
        chain_type: ChainTypeDoc::Sentiment,
    }
}

impl Example for AnalysisPayloadDoc {
    fn example() -> Self {
        analysis_example()
    }
}

/// A calendar date `YYYY-MM-DD` (29 February left out: it is not a date in most years).
macro_rules! date_re {
    () => {
        "[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
    };
}

/// The start of a UTC hour, RFC 3339.
pub const HOUR_START_PATTERN: &str = concat!(
    "^",
    date_re!(),
    r"T(?:[01][0-9]|2[0-3]):00:00(?:\.0{1,9})?(?:Z|\+00:00)$"
);

/// The start of a UTC day, RFC 3339.
pub const DAY_START_PATTERN: &str =
    concat!("^", date_re!(), r"T00:00:00(?:\.0{1,9})?(?:Z|\+00:00)$");

/// Hourly buckets.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename = "HourGranularity", rename_all = "lowercase")]
pub enum HourGranularityDoc {
    Hour,
}

/// Daily buckets.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename = "DayGranularity", rename_all = "lowercase")]
pub enum DayGranularityDoc {
    Day,
}

/// (Re)compute one hourly bucket.
#[derive(Debug, Clone, Object)]
#[oai(rename = "HourAggregation", example)]
pub struct HourAggregationDoc {
    pub granularity: HourGranularityDoc,
    /// The bucket's start: an RFC 3339 time in UTC on the hour, not in the future
    /// (else 422).
    #[oai(validator(
        pattern = r"^[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))T(?:[01][0-9]|2[0-3]):00:00(?:\.0{1,9})?(?:Z|\+00:00)$"
    ))]
    pub bucket_start: String,
}

/// (Re)compute one daily bucket.
#[derive(Debug, Clone, Object)]
#[oai(rename = "DayAggregation", example)]
pub struct DayAggregationDoc {
    pub granularity: DayGranularityDoc,
    /// The bucket's start: an RFC 3339 time in UTC at midnight, not in the future
    /// (else 422).
    #[oai(validator(
        pattern = r"^[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))T00:00:00(?:\.0{1,9})?(?:Z|\+00:00)$"
    ))]
    pub bucket_start: String,
}

fn hour_aggregation_example() -> HourAggregationDoc {
    HourAggregationDoc {
        granularity: HourGranularityDoc::Hour,
        bucket_start: "2026-01-01T13:00:00Z".to_owned(),
    }
}

fn day_aggregation_example() -> DayAggregationDoc {
    DayAggregationDoc {
        granularity: DayGranularityDoc::Day,
        bucket_start: "2026-01-01T00:00:00Z".to_owned(),
    }
}

impl Example for HourAggregationDoc {
    fn example() -> Self {
        hour_aggregation_example()
    }
}

impl Example for DayAggregationDoc {
    fn example() -> Self {
        day_aggregation_example()
    }
}

/// The payload of an `aggregation` job: (re)compute one bucket, hourly or daily.
pub struct AggregationPayloadDoc;

impl Type for AggregationPayloadDoc {
    const IS_REQUIRED: bool = true;
    type RawValueType = ();
    type RawElementValueType = ();

    fn name() -> Cow<'static, str> {
        "AggregationPayload".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference("AggregationPayload".to_owned())
    }

    fn register(registry: &mut Registry) {
        registry.create_schema::<Self, _>("AggregationPayload".to_owned(), |registry| {
            HourAggregationDoc::register(registry);
            DayAggregationDoc::register(registry);
            MetaSchema {
                description: Some(
                    "The payload of an `aggregation` job: (re)compute one hourly or daily bucket.",
                ),
                one_of: vec![
                    HourAggregationDoc::schema_ref(),
                    DayAggregationDoc::schema_ref(),
                ],
                ..MetaSchema::ANY
            }
        });
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        None
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::empty())
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

/// A payload newtype for one queue's typed submit operation: the document shows that
/// queue's payload schema, and the JSON is kept as it came, to be checked by
/// `drover_jobs::kinds::validate_payload` like every other submission.
macro_rules! typed_payload {
    ($name:ident, $doc:ty) => {
        #[derive(Debug, Clone, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub serde_json::Value);

        impl Type for $name {
            const IS_REQUIRED: bool = true;
            type RawValueType = serde_json::Value;
            type RawElementValueType = serde_json::Value;

            fn name() -> Cow<'static, str> {
                <$doc as Type>::name()
            }

            fn schema_ref() -> MetaSchemaRef {
                <$doc as Type>::schema_ref()
            }

            fn register(registry: &mut Registry) {
                <$doc as Type>::register(registry);
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

        impl ParseFromJSON for $name {
            fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
                Ok(Self(value.unwrap_or_default()))
            }
        }

        impl ToJSON for $name {
            fn to_json(&self) -> Option<serde_json::Value> {
                Some(self.0.clone())
            }
        }
    };
}

typed_payload!(ExportJobPayload, ExportPayloadDoc);
typed_payload!(AnalysisJobPayload, AnalysisPayloadDoc);
typed_payload!(AggregationJobPayload, AggregationPayloadDoc);
typed_payload!(CleanupJobPayload, CleanupPayloadDoc);

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

    /// The patterns in the `validator` attributes (which cannot name a constant) are
    /// the constants, and say what the domain accepts.
    #[test]
    fn bucket_patterns_are_the_constants() {
        let mut registry = Registry::new();
        AggregationPayloadDoc::register(&mut registry);
        for (schema, pattern) in [
            ("HourAggregation", HOUR_START_PATTERN),
            ("DayAggregation", DAY_START_PATTERN),
        ] {
            let s = serde_json::to_value(&registry.schemas[schema]).unwrap();
            assert_eq!(s["properties"]["bucket_start"]["pattern"], pattern);
        }
    }

    #[test]
    fn mirrors_match_the_payload_types() {
        in_step::<_, ExportPayload>(QueueName::Export, job_history_export_example());
        in_step::<_, ExportPayload>(QueueName::Export, aggregates_export_example());
        in_step::<_, ExportPayload>(QueueName::Export, analysis_results_export_example());
        in_step::<_, AnalysisPayload>(QueueName::Analysis, analysis_example());
        in_step::<_, AggregationPayload>(QueueName::Aggregation, hour_aggregation_example());
        in_step::<_, AggregationPayload>(QueueName::Aggregation, day_aggregation_example());
        in_step::<_, CleanupPayload>(QueueName::Cleanup, cleanup_example());
    }
}
