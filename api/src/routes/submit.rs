//! The body of a job submission, and how it is checked.
//!
//! Each type derives `Object` (the OpenAPI schema) and `Deserialize` (the parser, see
//! [`crate::payload`]), with the same field names and defaults. Serde rejects unknown
//! fields and wrong types, naming the field; [`JobOptionsBody::to_options`] checks the
//! ranges, naming the field too. Nothing is enqueued unless all of it passes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use drover_queue::options::{
    BACKOFF_FACTOR_RANGE, MAX_ATTEMPTS, MAX_BACKOFF_DELAY_MS, MAX_BACKOFF_MAX_DELAY_MS, MAX_DELAY,
    MAX_PRIORITY, default_factor, default_max_delay_ms,
};
use drover_queue::retention::{self, JobRetention, LimitsOverride};
use drover_queue::{Backoff, BackoffKind, JobOptions};
use poem_openapi::types::Example;
use poem_openapi::{Enum, Object};
use serde::Deserialize;

use super::payload_docs::{
    AggregationJobPayload, AnalysisJobPayload, CleanupJobPayload, ExportJobPayload,
};
use super::views::{JobLinks, JobStateView};
use crate::error::ApiError;

/// How retry delays grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Deserialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum BackoffType {
    Exponential,
    Fixed,
}

/// A job's retry delay policy.
///
/// The limits and defaults are the queue's (`drover_queue::options`); the literals in
/// the `validator` attributes, which cannot name a constant, are checked against them
/// by a test.
#[derive(Debug, Clone, Object, Deserialize)]
#[oai(rename = "Backoff")]
#[serde(deny_unknown_fields)]
pub struct BackoffBody {
    /// `exponential` (`delay_ms · factor^(attempt-1)`, capped at `max_delay_ms`) or `fixed`.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub kind: BackoffType,
    /// The first delay, in ms (at most one day).
    #[oai(validator(minimum(value = "0"), maximum(value = "86400000")))]
    pub delay_ms: u64,
    /// Growth per attempt, 1 to 10 (default 2).
    #[oai(
        default = "default_factor",
        validator(minimum(value = "1"), maximum(value = "10"))
    )]
    #[serde(default = "default_factor")]
    pub factor: f64,
    /// The largest delay, in ms, at least `delay_ms` (else 422; default one hour, at most
    /// seven days).
    #[oai(
        default = "default_max_delay_ms",
        validator(minimum(value = "0"), maximum(value = "604800000"))
    )]
    #[serde(default = "default_max_delay_ms")]
    pub max_delay_ms: u64,
    /// Share of the delay taken off at random, 0 to 1 (default 0).
    #[oai(default, validator(minimum(value = "0"), maximum(value = "1")))]
    #[serde(default)]
    pub jitter: f64,
}

/// Options of a job; each one omitted takes the queue's default.
#[derive(Debug, Clone, Default, Object, Deserialize)]
#[oai(rename = "JobOptions")]
#[serde(deny_unknown_fields)]
pub struct JobOptionsBody {
    /// Run no earlier than this many ms from now (at most one year).
    #[oai(validator(minimum(value = "0"), maximum(value = "31622400000")))]
    pub delay_ms: Option<u64>,
    /// Run no earlier than this time, at most one year ahead (else 422; wins over
    /// `delay_ms`).
    pub run_at: Option<DateTime<Utc>>,
    /// 0 (default) to 1000; higher runs first, FIFO within a priority.
    #[oai(validator(minimum(value = "0"), maximum(value = "1000")))]
    pub priority: Option<u16>,
    /// Attempts before the job fails for good, 1 to 1000 (default: the queue's).
    #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
    pub max_attempts: Option<u32>,
    /// Retry delays (default: the queue's).
    pub backoff: Option<BackoffBody>,
    /// How long the job stays in Redis once finished (default: the queue's retention).
    pub retention: Option<JobRetentionBody>,
}

/// How long a finished job stays in Redis before it is archived and removed, whichever
/// limit comes first; each one omitted takes the queue's.
#[derive(Debug, Clone, Default, Object, Deserialize)]
#[oai(rename = "RetentionLimits")]
#[serde(deny_unknown_fields)]
pub struct RetentionLimitsBody {
    /// Kept at most this many ms after it finished (at most ten years; 0: leaves at once).
    #[oai(validator(minimum(value = "0"), maximum(value = "315360000000")))]
    pub max_age_ms: Option<u64>,
    /// Kept while fewer than this many jobs of its state finished after it (at most 100000000).
    #[oai(validator(minimum(value = "0"), maximum(value = "100000000")))]
    pub max_count: Option<u64>,
}

/// A job's own retention, per finished state.
#[derive(Debug, Clone, Default, Object, Deserialize)]
#[oai(rename = "JobRetention")]
#[serde(deny_unknown_fields)]
pub struct JobRetentionBody {
    /// Once completed.
    pub completed: Option<RetentionLimitsBody>,
    /// Once failed for good.
    pub failed: Option<RetentionLimitsBody>,
}

impl JobRetentionBody {
    fn to_retention(&self) -> Result<JobRetention, ApiError> {
        let limits = |l: &Option<RetentionLimitsBody>, state: &str| {
            let Some(l) = l else {
                return Ok(LimitsOverride::default());
            };
            if let Some(a) = l.max_age_ms
                && u128::from(a) > retention::MAX_AGE.as_millis()
            {
                return Err(ApiError::validation(
                    &format!("options.retention.{state}.max_age_ms"),
                    "must be at most 315360000000 (ten years)",
                ));
            }
            if let Some(c) = l.max_count
                && c > retention::MAX_COUNT
            {
                return Err(ApiError::validation(
                    &format!("options.retention.{state}.max_count"),
                    "must be at most 100000000",
                ));
            }
            Ok(LimitsOverride {
                max_age_ms: l.max_age_ms,
                max_count: l.max_count,
            })
        };
        Ok(JobRetention {
            completed: limits(&self.completed, "completed")?,
            failed: limits(&self.failed, "failed")?,
        })
    }
}

/// A job for the `export` queue.
#[derive(Debug, Clone, Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddExportJobRequest {
    pub payload: ExportJobPayload,
    /// How and when to run it.
    #[oai(default)]
    #[serde(default)]
    pub options: JobOptionsBody,
}

/// A job for the `analysis` queue.
#[derive(Debug, Clone, Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddAnalysisJobRequest {
    pub payload: AnalysisJobPayload,
    /// How and when to run it.
    #[oai(default)]
    #[serde(default)]
    pub options: JobOptionsBody,
}

/// A job for the `aggregation` queue.
#[derive(Debug, Clone, Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddAggregationJobRequest {
    pub payload: AggregationJobPayload,
    /// How and when to run it.
    #[oai(default)]
    #[serde(default)]
    pub options: JobOptionsBody,
}

/// A job for the `cleanup` queue.
#[derive(Debug, Clone, Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddCleanupJobRequest {
    pub payload: CleanupJobPayload,
    /// How and when to run it.
    #[oai(default)]
    #[serde(default)]
    pub options: JobOptionsBody,
}

/// A submission of any of the shapes above, reduced to what [`super::jobs`] enqueues:
/// the payload as JSON (checked against the queue's job kind there) and the options.
pub trait Submission {
    fn into_parts(self) -> (serde_json::Value, JobOptionsBody);
}

macro_rules! submission {
    ($($t:ty),*) => {$(
        impl Submission for $t {
            fn into_parts(self) -> (serde_json::Value, JobOptionsBody) {
                (self.payload.0, self.options)
            }
        }
    )*};
}

submission!(
    AddExportJobRequest,
    AddAnalysisJobRequest,
    AddAggregationJobRequest,
    AddCleanupJobRequest
);

/// A job that was accepted.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct SubmittedJob {
    /// The job's id; for a repeated idempotency key, the first job's.
    pub id: String,
    pub queue: String,
    /// The state right after submission (`waiting` or `delayed`), absent when the
    /// idempotency key had been used: read the job for its state.
    #[oai(skip_serializing_if_is_none)]
    pub state: Option<JobStateView>,
    /// False when an earlier job owned the idempotency key and nothing was created.
    pub created: bool,
    pub links: JobLinks,
}

fn submitted_example() -> SubmittedJob {
    let id = "01JD4X8Q7W3K9N2M5P6R8T0V1Y";
    SubmittedJob {
        id: id.to_owned(),
        queue: "export".to_owned(),
        state: Some(JobStateView::Delayed),
        created: true,
        links: super::views::links("export", id),
    }
}

impl Example for SubmittedJob {
    fn example() -> Self {
        submitted_example()
    }
}

impl JobOptionsBody {
    /// The queue options these ask for, or a 400 naming the field out of range.
    pub fn to_options(&self) -> Result<JobOptions, ApiError> {
        let bad =
            |field: &str, msg: &str| Err(ApiError::validation(&format!("options.{field}"), msg));
        if let Some(d) = self.delay_ms
            && u128::from(d) > MAX_DELAY.as_millis()
        {
            return bad("delay_ms", "must be at most one year (31622400000 ms)");
        }
        if let Some(at) = self.run_at
            && i128::from(at.timestamp_millis()) - i128::from(drover_queue::queue::now_ms())
                > MAX_DELAY.as_millis() as i128
        {
            return Err(ApiError::unprocessable(
                "options.run_at",
                "must be at most one year ahead",
            ));
        }
        if let Some(p) = self.priority
            && p > MAX_PRIORITY
        {
            return bad("priority", "must be between 0 and 1000");
        }
        if let Some(m) = self.max_attempts
            && !(1..=MAX_ATTEMPTS).contains(&m)
        {
            return bad("max_attempts", "must be between 1 and 1000");
        }
        let backoff = match &self.backoff {
            None => None,
            Some(b) => {
                if b.delay_ms > MAX_BACKOFF_DELAY_MS {
                    return bad("backoff.delay_ms", "must be at most 86400000 (one day)");
                }
                if !BACKOFF_FACTOR_RANGE.contains(&b.factor) {
                    return bad("backoff.factor", "must be between 1 and 10");
                }
                if b.max_delay_ms > MAX_BACKOFF_MAX_DELAY_MS {
                    return bad(
                        "backoff.max_delay_ms",
                        "must be at most 604800000 (seven days)",
                    );
                }
                if b.max_delay_ms < b.delay_ms {
                    return Err(ApiError::unprocessable(
                        "options.backoff.max_delay_ms",
                        "must be at least options.backoff.delay_ms",
                    ));
                }
                if !(0.0..=1.0).contains(&b.jitter) {
                    return bad("backoff.jitter", "must be between 0 and 1");
                }
                Some(Backoff {
                    kind: match b.kind {
                        BackoffType::Exponential => BackoffKind::Exponential,
                        BackoffType::Fixed => BackoffKind::Fixed,
                    },
                    delay_ms: b.delay_ms,
                    factor: b.factor,
                    max_delay_ms: b.max_delay_ms,
                    jitter: b.jitter,
                })
            }
        };
        let opts = JobOptions {
            delay: self.delay_ms.map(Duration::from_millis),
            run_at_ms: self.run_at.map(|t| t.timestamp_millis()),
            priority: self.priority,
            max_attempts: self.max_attempts,
            backoff,
            idempotency_key: None,
            idempotency_ttl: None,
            retention: match &self.retention {
                None => None,
                Some(r) => Some(r.to_retention()?).filter(|r| !r.is_empty()),
            },
        };
        // The queue checks again; the checks above name the field more precisely.
        opts.validate()
            .map_err(|e| ApiError::validation("options", e.to_string()))?;
        Ok(opts)
    }

    /// Whether a job with these options starts out delayed.
    #[must_use]
    pub fn is_delayed(&self) -> bool {
        match self.run_at {
            Some(at) => at.timestamp_millis() > drover_queue::queue::now_ms(),
            None => self.delay_ms.is_some_and(|d| d > 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::parse;

    fn field_of(body: &str) -> String {
        let e = match parse::<AddCleanupJobRequest>(body.as_bytes()) {
            Err(e) => e,
            Ok(r) => r.options.to_options().unwrap_err(),
        };
        match e {
            ApiError::BadRequest(b) | ApiError::Unprocessable(b) => {
                b.0.error.details.unwrap()["field"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_options_name_their_field() {
        let p = r#""payload": {}"#;
        for (options, field) in [
            (r#"{"priority": 1001}"#, "options.priority"),
            (r#"{"priority": -1}"#, "options.priority"),
            (r#"{"priority": "high"}"#, "options.priority"),
            (r#"{"max_attempts": 0}"#, "options.max_attempts"),
            (r#"{"delay_ms": 99999999999999}"#, "options.delay_ms"),
            (r#"{"run_at": "tomorrow"}"#, "options.run_at"),
            (r#"{"run_at": "2999-01-01T00:00:00Z"}"#, "options.run_at"),
            (r#"{"colour": 1}"#, "options.colour"),
            (
                r#"{"backoff": {"type": "linear", "delay_ms": 1}}"#,
                "options.backoff.type",
            ),
            (
                r#"{"backoff": {"type": "fixed"}}"#,
                "options.backoff.delay_ms",
            ),
            (
                r#"{"backoff": {"type": "fixed", "delay_ms": 10, "max_delay_ms": 5}}"#,
                "options.backoff.max_delay_ms",
            ),
            (
                r#"{"backoff": {"type": "fixed", "delay_ms": 10, "jitter": 2}}"#,
                "options.backoff.jitter",
            ),
            (
                r#"{"backoff": {"type": "fixed", "delay_ms": 10, "factor": 0.5}}"#,
                "options.backoff.factor",
            ),
            (
                r#"{"retention": {"completed": {"max_age_ms": 999999999999999}}}"#,
                "options.retention.completed.max_age_ms",
            ),
            (
                r#"{"retention": {"failed": {"max_count": 100000001}}}"#,
                "options.retention.failed.max_count",
            ),
            (
                r#"{"retention": {"failed": {"max_count": -1}}}"#,
                "options.retention.failed.max_count",
            ),
            (r#"{"retention": {"done": {}}}"#, "options.retention.done"),
        ] {
            assert_eq!(
                field_of(&format!("{{{p}, \"options\": {options}}}")),
                field,
                "{options}"
            );
        }
        assert_eq!(field_of(r#"{"payload": {}, "extra": 1}"#), "extra");
        assert_eq!(field_of(r#"{"options": {}}"#), "payload");
    }

    /// The spec's backoff limits and defaults are the queue's, which enforces them.
    #[test]
    fn the_backoff_schema_says_what_the_queue_enforces() {
        use poem_openapi::registry::Registry;
        use poem_openapi::types::Type;
        let mut registry = Registry::new();
        BackoffBody::register(&mut registry);
        let schema = serde_json::to_value(&registry.schemas["Backoff"]).unwrap();
        let p = &schema["properties"];
        assert_eq!(p["delay_ms"]["maximum"], MAX_BACKOFF_DELAY_MS as f64);
        assert_eq!(
            p["max_delay_ms"]["maximum"],
            MAX_BACKOFF_MAX_DELAY_MS as f64
        );
        assert_eq!(p["max_delay_ms"]["default"], default_max_delay_ms());
        assert_eq!(p["factor"]["default"], default_factor());
        assert_eq!(p["factor"]["minimum"], *BACKOFF_FACTOR_RANGE.start());
        assert_eq!(p["factor"]["maximum"], *BACKOFF_FACTOR_RANGE.end());
    }

    #[test]
    fn good_options_convert() {
        let r: AddCleanupJobRequest = parse(
            br#"{"payload": {"dry_run": true}, "options": {"delay_ms": 5, "priority": 7,
                 "backoff": {"type": "fixed", "delay_ms": 10}}}"#,
        )
        .unwrap();
        let o = r.options.to_options().unwrap();
        assert_eq!(o.priority, Some(7));
        assert_eq!(o.backoff.unwrap().max_delay_ms, 3_600_000);
        assert!(r.options.is_delayed());
        let r: AddCleanupJobRequest = parse(br#"{"payload": {}}"#).unwrap();
        assert!(!r.options.is_delayed());
        assert_eq!(r.options.to_options().unwrap(), JobOptions::default());
        let r: AddCleanupJobRequest = parse(
            br#"{"payload": {}, "options": {"retention": {"completed": {"max_age_ms": 0}}}}"#,
        )
        .unwrap();
        let ret = r.options.to_options().unwrap().retention.unwrap();
        assert_eq!(ret.completed.max_age_ms, Some(0));
        assert_eq!(ret.failed, LimitsOverride::default());
    }
}
