//! The jobs resource: submit, list and read (submitter keys); delete, retry and
//! promote (admin keys, logic in [`super::job_actions`]).

use drover_jobs::QueueName;
use drover_jobs::kinds::validate_payload;
use drover_queue::NewJob;
use drover_queue::options::MAX_IDEMPOTENCY_KEY_LEN;
use drover_queue::queue::MAX_PAGE;
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::QueueParam;
use super::job_actions::{DeleteJobResponse, Move, MoveJobResponse, delete_job, move_job};
use super::lookup::{find_anywhere, find_in_queue};
use super::submit::{
    AddAggregationJobRequest, AddAnalysisJobRequest, AddCleanupJobRequest, AddExportJobRequest,
    Submission, SubmittedJob,
};
use super::views::{JobPage, JobStateView, JobView, PageLinks, encode_query, links};
use crate::auth::{AdminKey, Principal, SubmitterKey};
use crate::error::ApiError;
use crate::middleware::{RequestId, TraceParent};
use crate::openapi::ApiTags;
use crate::payload::JsonBody;
use crate::state::AppState;

#[derive(ApiResponse)]
enum AddJobResponse {
    /// The job was created; `Location` is its URL.
    #[oai(status = 201)]
    Created(
        Json<SubmittedJob>,
        /// The job's URL.
        #[oai(header = "Location")]
        String,
    ),
    /// A job with this `Idempotency-Key` was submitted before; nothing was created and
    /// this is the first job.
    #[oai(status = 200)]
    Existing(Json<SubmittedJob>),
}

#[derive(ApiResponse)]
enum GetJobResponse {
    /// The job.
    #[oai(status = 200)]
    Ok(Json<JobView>),
}

#[derive(ApiResponse)]
enum ListJobsResponse {
    /// A page of jobs in the state asked for.
    #[oai(status = 200)]
    Ok(Json<JobPage>),
}

/// The jobs resource.
pub struct JobsApi;

/// A 409 for an `Idempotency-Key` sent again with another payload or queue.
fn key_reused(first: &str, queue: QueueName) -> ApiError {
    ApiError::conflict_code(
        "idempotency_key_reused",
        format!(
            "this Idempotency-Key was used for job {first:?} (queue {queue}) with another \
             payload or queue; nothing was created: use a new key for a different request"
        ),
        serde_json::json!({ "job_id": first, "queue": queue.as_str() }),
    )
}

/// Jobs per page when `limit` is not given.
const DEFAULT_PAGE: u32 = 50;

fn default_limit() -> u32 {
    DEFAULT_PAGE
}

fn default_state() -> JobStateView {
    JobStateView::Waiting
}

/// What every submit operation does once its body is parsed: checks the payload
/// against queue `name`'s job kind and the options against their ranges, honours the
/// `Idempotency-Key`, and enqueues.
async fn submit(
    state: &AppState,
    key: &Principal,
    request_id: &RequestId,
    traceparent: &TraceParent,
    name: QueueName,
    idempotency_key: Option<String>,
    body: impl Submission,
) -> Result<AddJobResponse, ApiError> {
    if !key.may_use(name) {
        return Err(ApiError::forbidden(format!(
            "this key may not use queue {name}"
        )));
    }
    let (mut payload, options_body) = body.into_parts();
    // The document marks optional fields nullable: `null` means absent.
    drop_nulls(&mut payload);
    if !payload.is_object() {
        return Err(ApiError::validation("payload", "must be a JSON object"));
    }
    validate_payload(name, &payload).map_err(|e| {
        // serde reports a missing field at its parent: name the field itself.
        let missing = e
            .message
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next());
        let field = match (e.field.as_str(), missing) {
            ("", None) => "payload".to_owned(),
            ("", Some(m)) => format!("payload.{m}"),
            (f, None) => format!("payload.{f}"),
            (f, Some(m)) => format!("payload.{f}.{m}"),
        };
        if e.beyond_schema {
            ApiError::unprocessable(&field, e.message)
        } else {
            ApiError::validation(&field, e.message)
        }
    })?;
    let analysis = if name == QueueName::Analysis {
        Some(super::analysis::check_payload(state, &payload).await?)
    } else {
        None
    };
    let mut options = options_body.to_options()?;
    let principal = key;
    if let Some(key) = idempotency_key {
        if key.is_empty()
            || key.len() > MAX_IDEMPOTENCY_KEY_LEN
            || !key.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        {
            return Err(ApiError::validation(
                "Idempotency-Key",
                "must be 1 to 255 printable ASCII characters",
            ));
        }
        // Stored in the clients' namespace, and in the submitting key's: no client
        // reaches an internal key, nor another tenant's job through a shared key.
        let stored =
            drover_queue::options::client_idempotency_key(&format!("{}:{key}", principal.key_id));
        // Keys are claimed per queue; a key already used on another queue is a reuse.
        for (other, q) in state.queues().all().filter(|(q, _)| *q != name) {
            if let Some(first) = q.idempotency_owner(&stored).await? {
                return Err(key_reused(&first, other));
            }
        }
        options.idempotency_key = Some(stored);
    }
    let mut job = NewJob::raw(payload.to_string())
        .with_options(options)
        .with_request_id(request_id.0.clone())
        .with_submitter(principal.key_id);
    if let Some(tp) = &traceparent.0 {
        job = job.with_traceparent(tp.clone());
    }
    let e = state.queues().get(name).enqueue(job).await?;
    metrics::counter!(drover_queue::metrics::ENQUEUED, "queue" => name.as_str())
        .increment(u64::from(e.created));
    if e.payload_differs {
        return Err(key_reused(&e.id, name));
    }
    if let Some(p) = &analysis
        && e.created
    {
        super::analysis::record_submitted(state, &e.id, p).await?;
    }
    // A replayed key names the first job; if that job was deleted (or cleaned) since,
    // there is nothing to return, and nothing was created: say so.
    if !e.created
        && find_in_queue(state, principal, name, &e.id)
            .await?
            .is_none()
    {
        return Err(ApiError::conflict(format!(
            "this Idempotency-Key was used by job {:?}, which has since been deleted; \
             nothing was created: use a new key to submit again",
            e.id
        )));
    }
    let view = SubmittedJob {
        links: links(name.as_str(), &e.id),
        queue: name.as_str().to_owned(),
        state: e.created.then_some(if options_body.is_delayed() {
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

/// Removes the members whose value is `null` from every object in `v`: an optional
/// payload field sent as `null` is read as absent, and takes its default.
fn drop_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// A page of queue `name`'s jobs in `job_state`, those `key` may read (see
/// `list_export_jobs`).
async fn list(
    state: &AppState,
    key: &Principal,
    name: QueueName,
    job_state: JobStateView,
    cursor: Option<String>,
    limit: u32,
) -> Result<ListJobsResponse, ApiError> {
    if !key.may_use(name) {
        return Err(ApiError::not_found(format!(
            "no queue named {:?}",
            name.as_str()
        )));
    }
    let limit = usize::try_from(limit)
        .unwrap_or(MAX_PAGE)
        .clamp(1, MAX_PAGE);
    let page = state
        .queues()
        .get(name)
        .list(job_state.into(), cursor.as_deref(), limit)
        .await
        .map_err(|e| match e {
            drover_queue::QueueError::InvalidOptions(m) => ApiError::validation("cursor", m),
            other => other.into(),
        })?;
    let next = page.next_cursor.as_ref().map(|c| {
        format!(
            "/api/v1/queues/{name}/jobs?state={}&limit={limit}&cursor={}",
            drover_queue::JobState::from(job_state),
            encode_query(c)
        )
    });
    Ok(ListJobsResponse::Ok(Json(JobPage {
        // A submitter's page holds only its own jobs, so it may hold fewer than
        // `limit`; the cursor still walks the whole queue.
        jobs: page
            .jobs
            .into_iter()
            .filter(|j| key.may_read(&j.queue, j.submitter))
            .map(Into::into)
            .collect(),
        next_cursor: page.next_cursor,
        links: PageLinks { next },
    })))
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Jobs")]
impl JobsApi {
    /// Submit an export job
    ///
    /// Streams rows of the archive, the aggregates or analysis results into a downloadable file. Checks the payload and the options, then enqueues
    /// the job on the `export` queue; a bad field answers 400 naming it, and nothing is
    /// enqueued. With an `Idempotency-Key` used on this queue within the last 24 hours,
    /// answers 200 with the first job instead of creating another (409 if that job has
    /// been deleted since). The same key with another payload, or on another queue, is
    /// a 409 `idempotency_key_reused` naming the first job.
    #[oai(
        path = "/queues/export/jobs",
        method = "post",
        operation_id = "add_export_job"
    )]
    async fn add_export_job(
        &self,
        key: SubmitterKey,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        traceparent: Data<&TraceParent>,
        /// Makes retries of this request safe: a second submission with the same key
        /// (within 24 hours, on the same queue, by the same API key) creates nothing and
        /// returns the first job. 1 to 255 printable ASCII characters.
        #[oai(
            name = "Idempotency-Key",
            validator(
                max_length = 255,
                pattern = r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$"
            )
        )]
        idempotency_key: Header<Option<String>>,
        body: JsonBody<AddExportJobRequest>,
    ) -> Result<AddJobResponse, ApiError> {
        submit(
            &state,
            &key.0,
            &request_id,
            &traceparent,
            QueueName::Export,
            idempotency_key.0,
            body.0,
        )
        .await
    }

    /// List export jobs
    ///
    /// A page of the `export` queue's jobs in one state: waiting, delayed and active jobs
    /// in the order they run, completed and failed jobs newest first; a submitter key
    /// sees only the jobs it submitted (a page may then hold fewer than `limit`). Pass
    /// `next_cursor` back as `cursor` for the next page; jobs that change state between
    /// pages may be skipped or seen twice.
    #[oai(
        path = "/queues/export/jobs",
        method = "get",
        operation_id = "list_export_jobs"
    )]
    async fn list_export_jobs(
        &self,
        key: SubmitterKey,
        state: Data<&AppState>,
        /// Which jobs (default `waiting`).
        #[oai(name = "state", default = "default_state")]
        job_state: Query<JobStateView>,
        /// The `next_cursor` of the previous page (opaque: pass it back as it came).
        #[oai(validator(
            max_length = 200,
            pattern = r"^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?\|[0-9A-Za-z_-]{1,64}$"
        ))]
        cursor: Query<Option<String>>,
        /// Jobs per page, 1 to 1000 (default 50).
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<u32>,
    ) -> Result<ListJobsResponse, ApiError> {
        list(
            &state,
            &key.0,
            QueueName::Export,
            job_state.0,
            cursor.0,
            limit.0,
        )
        .await
    }

    /// Submit an analysis job
    ///
    /// Scores the text columns of an uploaded dataset (404 if there is no such dataset). Checks the payload and the options, then enqueues
    /// the job on the `analysis` queue; a bad field answers 400 naming it, and nothing is
    /// enqueued. With an `Idempotency-Key` used on this queue within the last 24 hours,
    /// answers 200 with the first job instead of creating another (409 if that job has
    /// been deleted since). The same key with another payload, or on another queue, is
    /// a 409 `idempotency_key_reused` naming the first job.
    #[oai(
        path = "/queues/analysis/jobs",
        method = "post",
        operation_id = "add_analysis_job"
    )]
    async fn add_analysis_job(
        &self,
        key: SubmitterKey,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        traceparent: Data<&TraceParent>,
        /// Makes retries of this request safe: a second submission with the same key
        /// (within 24 hours, on the same queue, by the same API key) creates nothing and
        /// returns the first job. 1 to 255 printable ASCII characters.
        #[oai(
            name = "Idempotency-Key",
            validator(
                max_length = 255,
                pattern = r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$"
            )
        )]
        idempotency_key: Header<Option<String>>,
        body: JsonBody<AddAnalysisJobRequest>,
    ) -> Result<AddJobResponse, ApiError> {
        submit(
            &state,
            &key.0,
            &request_id,
            &traceparent,
            QueueName::Analysis,
            idempotency_key.0,
            body.0,
        )
        .await
    }

    /// List analysis jobs
    ///
    /// A page of the `analysis` queue's jobs in one state: waiting, delayed and active jobs
    /// in the order they run, completed and failed jobs newest first; a submitter key
    /// sees only the jobs it submitted (a page may then hold fewer than `limit`). Pass
    /// `next_cursor` back as `cursor` for the next page; jobs that change state between
    /// pages may be skipped or seen twice.
    #[oai(
        path = "/queues/analysis/jobs",
        method = "get",
        operation_id = "list_analysis_jobs"
    )]
    async fn list_analysis_jobs(
        &self,
        key: SubmitterKey,
        state: Data<&AppState>,
        /// Which jobs (default `waiting`).
        #[oai(name = "state", default = "default_state")]
        job_state: Query<JobStateView>,
        /// The `next_cursor` of the previous page (opaque: pass it back as it came).
        #[oai(validator(
            max_length = 200,
            pattern = r"^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?\|[0-9A-Za-z_-]{1,64}$"
        ))]
        cursor: Query<Option<String>>,
        /// Jobs per page, 1 to 1000 (default 50).
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<u32>,
    ) -> Result<ListJobsResponse, ApiError> {
        list(
            &state,
            &key.0,
            QueueName::Analysis,
            job_state.0,
            cursor.0,
            limit.0,
        )
        .await
    }

    /// Submit an aggregation job
    ///
    /// (Re)computes one hourly or daily bucket of the queue counters. Checks the payload and the options, then enqueues
    /// the job on the `aggregation` queue; a bad field answers 400 naming it, and nothing is
    /// enqueued. With an `Idempotency-Key` used on this queue within the last 24 hours,
    /// answers 200 with the first job instead of creating another (409 if that job has
    /// been deleted since). The same key with another payload, or on another queue, is
    /// a 409 `idempotency_key_reused` naming the first job.
    #[oai(
        path = "/queues/aggregation/jobs",
        method = "post",
        operation_id = "add_aggregation_job"
    )]
    async fn add_aggregation_job(
        &self,
        key: SubmitterKey,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        traceparent: Data<&TraceParent>,
        /// Makes retries of this request safe: a second submission with the same key
        /// (within 24 hours, on the same queue, by the same API key) creates nothing and
        /// returns the first job. 1 to 255 printable ASCII characters.
        #[oai(
            name = "Idempotency-Key",
            validator(
                max_length = 255,
                pattern = r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$"
            )
        )]
        idempotency_key: Header<Option<String>>,
        body: JsonBody<AddAggregationJobRequest>,
    ) -> Result<AddJobResponse, ApiError> {
        submit(
            &state,
            &key.0,
            &request_id,
            &traceparent,
            QueueName::Aggregation,
            idempotency_key.0,
            body.0,
        )
        .await
    }

    /// List aggregation jobs
    ///
    /// A page of the `aggregation` queue's jobs in one state: waiting, delayed and active jobs
    /// in the order they run, completed and failed jobs newest first; a submitter key
    /// sees only the jobs it submitted (a page may then hold fewer than `limit`). Pass
    /// `next_cursor` back as `cursor` for the next page; jobs that change state between
    /// pages may be skipped or seen twice.
    #[oai(
        path = "/queues/aggregation/jobs",
        method = "get",
        operation_id = "list_aggregation_jobs"
    )]
    async fn list_aggregation_jobs(
        &self,
        key: SubmitterKey,
        state: Data<&AppState>,
        /// Which jobs (default `waiting`).
        #[oai(name = "state", default = "default_state")]
        job_state: Query<JobStateView>,
        /// The `next_cursor` of the previous page (opaque: pass it back as it came).
        #[oai(validator(
            max_length = 200,
            pattern = r"^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?\|[0-9A-Za-z_-]{1,64}$"
        ))]
        cursor: Query<Option<String>>,
        /// Jobs per page, 1 to 1000 (default 50).
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<u32>,
    ) -> Result<ListJobsResponse, ApiError> {
        list(
            &state,
            &key.0,
            QueueName::Aggregation,
            job_state.0,
            cursor.0,
            limit.0,
        )
        .await
    }

    /// Submit a cleanup job
    ///
    /// Archives and deletes what is past retention. Checks the payload and the options, then enqueues
    /// the job on the `cleanup` queue; a bad field answers 400 naming it, and nothing is
    /// enqueued. With an `Idempotency-Key` used on this queue within the last 24 hours,
    /// answers 200 with the first job instead of creating another (409 if that job has
    /// been deleted since). The same key with another payload, or on another queue, is
    /// a 409 `idempotency_key_reused` naming the first job.
    #[oai(
        path = "/queues/cleanup/jobs",
        method = "post",
        operation_id = "add_cleanup_job"
    )]
    async fn add_cleanup_job(
        &self,
        key: SubmitterKey,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        traceparent: Data<&TraceParent>,
        /// Makes retries of this request safe: a second submission with the same key
        /// (within 24 hours, on the same queue, by the same API key) creates nothing and
        /// returns the first job. 1 to 255 printable ASCII characters.
        #[oai(
            name = "Idempotency-Key",
            validator(
                max_length = 255,
                pattern = r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$"
            )
        )]
        idempotency_key: Header<Option<String>>,
        body: JsonBody<AddCleanupJobRequest>,
    ) -> Result<AddJobResponse, ApiError> {
        submit(
            &state,
            &key.0,
            &request_id,
            &traceparent,
            QueueName::Cleanup,
            idempotency_key.0,
            body.0,
        )
        .await
    }

    /// List cleanup jobs
    ///
    /// A page of the `cleanup` queue's jobs in one state: waiting, delayed and active jobs
    /// in the order they run, completed and failed jobs newest first; a submitter key
    /// sees only the jobs it submitted (a page may then hold fewer than `limit`). Pass
    /// `next_cursor` back as `cursor` for the next page; jobs that change state between
    /// pages may be skipped or seen twice.
    #[oai(
        path = "/queues/cleanup/jobs",
        method = "get",
        operation_id = "list_cleanup_jobs"
    )]
    async fn list_cleanup_jobs(
        &self,
        key: SubmitterKey,
        state: Data<&AppState>,
        /// Which jobs (default `waiting`).
        #[oai(name = "state", default = "default_state")]
        job_state: Query<JobStateView>,
        /// The `next_cursor` of the previous page (opaque: pass it back as it came).
        #[oai(validator(
            max_length = 200,
            pattern = r"^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?\|[0-9A-Za-z_-]{1,64}$"
        ))]
        cursor: Query<Option<String>>,
        /// Jobs per page, 1 to 1000 (default 50).
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<u32>,
    ) -> Result<ListJobsResponse, ApiError> {
        list(
            &state,
            &key.0,
            QueueName::Cleanup,
            job_state.0,
            cursor.0,
            limit.0,
        )
        .await
    }

    /// Get a job of a queue
    ///
    /// The job as it is now, from Redis; a finished job that was archived comes from the
    /// database.
    #[oai(
        path = "/queues/:queue/jobs/:id",
        method = "get",
        operation_id = "get_job"
    )]
    async fn get_job(
        &self,
        key: SubmitterKey,
        state: Data<&AppState>,
        /// `export`, `analysis`, `aggregation` or `cleanup`.
        queue: Path<QueueParam>,
        /// The job's id.
        id: Path<String>,
    ) -> Result<GetJobResponse, ApiError> {
        let name = queue.0.queue()?;
        match find_in_queue(&state, &key.0, name, &id.0).await? {
            Some(j) => Ok(GetJobResponse::Ok(Json(j))),
            None => Err(ApiError::not_found(format!(
                "no job {:?} in queue {name}",
                id.0
            ))),
        }
    }

    /// Get a job of any queue
    ///
    /// Looks for the job in every queue, then in the archive of finished jobs.
    #[oai(path = "/jobs/:id", method = "get", operation_id = "find_job")]
    async fn find_job(
        &self,
        key: SubmitterKey,
        state: Data<&AppState>,
        /// The job's id.
        id: Path<String>,
    ) -> Result<GetJobResponse, ApiError> {
        match find_anywhere(&state, &key.0, &id.0).await? {
            Some(j) => Ok(GetJobResponse::Ok(Json(j))),
            None => Err(ApiError::not_found(format!("no job {:?}", id.0))),
        }
    }

    /// Delete a job
    ///
    /// Deletes a waiting, delayed, completed or failed job. An active job cannot be
    /// deleted (409): a worker is running it; wait until it finishes.
    #[oai(
        path = "/queues/:queue/jobs/:id",
        method = "delete",
        operation_id = "delete_job"
    )]
    async fn delete_job(
        &self,
        _key: AdminKey,
        state: Data<&AppState>,
        /// `export`, `analysis`, `aggregation` or `cleanup`.
        queue: Path<QueueParam>,
        /// The job's id.
        id: Path<String>,
    ) -> Result<DeleteJobResponse, ApiError> {
        delete_job(&state, &queue.0.0, &id.0).await
    }

    /// Retry a failed job
    ///
    /// Moves a failed job back to `waiting` with its attempts reset; its error history
    /// is kept. Any other state answers 409.
    #[oai(
        path = "/queues/:queue/jobs/:id/retry",
        method = "post",
        operation_id = "retry_job"
    )]
    async fn retry_job(
        &self,
        _key: AdminKey,
        state: Data<&AppState>,
        /// `export`, `analysis`, `aggregation` or `cleanup`.
        queue: Path<QueueParam>,
        /// The job's id.
        id: Path<String>,
    ) -> Result<MoveJobResponse, ApiError> {
        move_job(&state, &queue.0.0, &id.0, Move::Retry).await
    }

    /// Promote a delayed job
    ///
    /// Runs a delayed job (scheduled, or waiting out a retry backoff) now: it moves to
    /// `waiting`. Any other state answers 409.
    #[oai(
        path = "/queues/:queue/jobs/:id/promote",
        method = "post",
        operation_id = "promote_job"
    )]
    async fn promote_job(
        &self,
        _key: AdminKey,
        state: Data<&AppState>,
        /// `export`, `analysis`, `aggregation` or `cleanup`.
        queue: Path<QueueParam>,
        /// The job's id.
        id: Path<String>,
    ) -> Result<MoveJobResponse, ApiError> {
        move_job(&state, &queue.0.0, &id.0, Move::Promote).await
    }
}
