//! Submitting and reading jobs.

use std::time::Duration;

use chrono::{DateTime, Utc};
use drover_jobs::kinds::validate_payload;
use drover_queue::{Backoff, BackoffKind, JobOptions, NewJob};
use poem::web::Data;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::queue_name;
use super::views::{JobStateView, JobView, links};
use crate::error::ApiError;
use crate::middleware::RequestId;
use crate::openapi::ApiTags;
use crate::state::AppState;

/// How retry delays grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum BackoffType {
    Exponential,
    Fixed,
}

/// A job's retry delay policy.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct BackoffBody {
    /// `exponential` (`delay_ms · factor^(attempt-1)`, capped) or `fixed`.
    #[oai(rename = "type")]
    pub kind: BackoffType,
    /// The first delay, in ms (at most one day).
    #[oai(validator(maximum(value = "86400000")))]
    pub delay_ms: u64,
    /// Growth per attempt, 1 to 10 (default 2).
    #[oai(
        default = "default_factor",
        validator(minimum(value = "1"), maximum(value = "10"))
    )]
    pub factor: f64,
    /// The largest delay, in ms (default one hour, at most seven days).
    #[oai(
        default = "default_max_delay_ms",
        validator(maximum(value = "604800000"))
    )]
    pub max_delay_ms: u64,
    /// Share of the delay taken off at random, 0 to 1 (default 0).
    #[oai(default, validator(minimum(value = "0"), maximum(value = "1")))]
    pub jitter: f64,
}

fn default_factor() -> f64 {
    2.0
}

fn default_max_delay_ms() -> u64 {
    3_600_000
}

/// Options of a job; each one omitted takes the queue's default.
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct JobOptionsBody {
    /// Run no earlier than this many ms from now (at most one year).
    #[oai(validator(maximum(value = "31622400000")))]
    pub delay_ms: Option<u64>,
    /// Run no earlier than this time (wins over `delay_ms`).
    pub run_at: Option<DateTime<Utc>>,
    /// 0 (default) to 1000; higher runs first, FIFO within a priority.
    #[oai(validator(maximum(value = "1000")))]
    pub priority: Option<u16>,
    /// Attempts before the job fails for good, 1 to 1000.
    #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
    pub max_attempts: Option<u32>,
    /// Retry delays.
    pub backoff: Option<BackoffBody>,
}

/// A job to submit.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct AddJobRequest {
    /// The job's payload; its shape depends on the queue (see the job kinds in the docs).
    pub payload: serde_json::Value,
    #[oai(default)]
    pub options: JobOptionsBody,
}

/// A job that was accepted.
#[derive(Debug, Clone, Object)]
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
    pub links: super::views::JobLinks,
}

#[derive(ApiResponse)]
enum AddJobResponse {
    /// The job was created.
    #[oai(status = 201)]
    Created(Json<SubmittedJob>, #[oai(header = "Location")] String),
    /// A job with this `Idempotency-Key` already exists; nothing was created.
    #[oai(status = 200)]
    Existing(Json<SubmittedJob>),
}

#[derive(ApiResponse)]
enum GetJobResponse {
    /// The job.
    #[oai(status = 200)]
    Ok(Json<JobView>),
}

/// Submitting and reading jobs.
pub struct JobsApi {
    pub state: AppState,
}

/// Longest idempotency key.
const MAX_KEY: usize = 255;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Jobs")]
impl JobsApi {
    /// Submit a job
    ///
    /// Validates the payload against the queue's job kind and enqueues it. With an
    /// `Idempotency-Key` used within the last 24 hours, returns the first job instead
    /// of creating another.
    #[oai(
        path = "/queues/:queue/jobs",
        method = "post",
        operation_id = "add_job"
    )]
    async fn add_job(
        &self,
        /// `export`, `analysis`, `aggregation` or `cleanup`.
        queue: Path<String>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        body: Json<AddJobRequest>,
        request_id: Data<&RequestId>,
    ) -> Result<AddJobResponse, ApiError> {
        let name = queue_name(&queue.0)?;
        let body = body.0;
        if !body.payload.is_object() {
            return Err(ApiError::validation("payload", "must be a JSON object"));
        }
        validate_payload(name, &body.payload).map_err(|e| {
            let field = if e.field.is_empty() {
                "payload".to_owned()
            } else {
                format!("payload.{}", e.field)
            };
            ApiError::validation(&field, e.message)
        })?;
        let mut options = options(body.options)?;
        if let Some(key) = idempotency_key.0 {
            if key.is_empty() || key.len() > MAX_KEY || key.chars().any(char::is_control) {
                return Err(ApiError::validation(
                    "Idempotency-Key",
                    "must be 1 to 255 characters",
                ));
            }
            options.idempotency_key = Some(key);
        }
        let q = self.state.queues().get(name);
        let job = NewJob::raw(body.payload.to_string())
            .with_options(options.clone())
            .with_request_id(request_id.0.0.clone());
        let e = q.enqueue(job).await?;
        metrics::counter!(drover_queue::metrics::ENQUEUED, "queue" => name.as_str())
            .increment(u64::from(e.created));
        let delayed = options.delay.is_some_and(|d| !d.is_zero())
            || options
                .run_at_ms
                .is_some_and(|t| t > drover_queue::queue::now_ms());
        let view = SubmittedJob {
            links: links(name.as_str(), &e.id),
            queue: name.as_str().to_owned(),
            state: e.created.then_some(if delayed {
                JobStateView::Delayed
            } else {
                JobStateView::Waiting
            }),
            created: e.created,
            id: e.id,
        };
        Ok(if view.created {
            let location = view.links.self_.clone();
            AddJobResponse::Created(Json(view), location)
        } else {
            AddJobResponse::Existing(Json(view))
        })
    }

    /// Get a job
    #[oai(
        path = "/queues/:queue/jobs/:id",
        method = "get",
        operation_id = "get_job"
    )]
    async fn get_job(
        &self,
        queue: Path<String>,
        id: Path<String>,
    ) -> Result<GetJobResponse, ApiError> {
        let name = queue_name(&queue.0)?;
        match self.state.queues().get(name).get(&id.0).await? {
            Some(j) => Ok(GetJobResponse::Ok(Json(j.into()))),
            None => Err(ApiError::not_found(format!(
                "no job {:?} in queue {name}",
                id.0
            ))),
        }
    }
}

/// Turns the wire options into queue options, checking what the schema cannot.
fn options(o: JobOptionsBody) -> Result<JobOptions, ApiError> {
    let backoff = o.backoff.map(|b| Backoff {
        kind: match b.kind {
            BackoffType::Exponential => BackoffKind::Exponential,
            BackoffType::Fixed => BackoffKind::Fixed,
        },
        delay_ms: b.delay_ms,
        factor: b.factor,
        max_delay_ms: b.max_delay_ms,
        jitter: b.jitter,
    });
    let opts = JobOptions {
        delay: o.delay_ms.map(Duration::from_millis),
        run_at_ms: o.run_at.map(|t| t.timestamp_millis()),
        priority: o.priority,
        max_attempts: o.max_attempts,
        backoff,
        idempotency_key: None,
        idempotency_ttl: None,
    };
    opts.validate().map_err(|e| {
        let msg = e.to_string();
        let field = msg
            .split_whitespace()
            .next()
            .unwrap_or("options")
            .to_owned();
        ApiError::validation(&format!("options.{field}"), msg)
    })?;
    if let Some(at) = o.run_at
        && at.timestamp_millis() - drover_queue::queue::now_ms() > 366 * 24 * 3600 * 1000
    {
        return Err(ApiError::validation(
            "options.run_at",
            "must be within one year",
        ));
    }
    Ok(opts)
}
