//! Running the queues: list, metrics, pause, resume, clean, flow limits. Admin keys only.

use std::time::Duration;

use chrono::{DateTime, Utc};
use drover_jobs::QueueName;
use drover_queue::flow::{FlowPatch, FlowStatus, LimitError, RateLimit, SetBy, check_max_active};
use drover_queue::{Counts, JobState, MinuteStats, Queue};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use serde::Deserialize;

use super::QueueParam;
use super::views::at;
use crate::auth::AdminKey;
use crate::error::ApiError;
use crate::openapi::ApiTags;
use crate::payload::JsonBody;
use crate::state::AppState;

/// Minutes of completed/failed counts the metrics report.
pub const METRICS_WINDOW_MINUTES: u32 = 15;

/// Jobs per state.
#[derive(Debug, Clone, Copy, Default, Object)]
pub struct StateCounts {
    pub waiting: u64,
    pub delayed: u64,
    pub active: u64,
    pub completed: u64,
    pub failed: u64,
}

impl From<Counts> for StateCounts {
    fn from(c: Counts) -> Self {
        Self {
            waiting: c.waiting,
            delayed: c.delayed,
            active: c.active,
            completed: c.completed,
            failed: c.failed,
        }
    }
}

/// Jobs that finished in one minute.
#[derive(Debug, Clone, Object)]
pub struct MinuteCount {
    /// The start of the minute.
    pub minute: DateTime<Utc>,
    pub completed: u64,
    pub failed: u64,
}

/// Completed and failed jobs over the last minutes.
#[derive(Debug, Clone, Object)]
pub struct Throughput {
    /// How many minutes: 15, the current one last (it is still running).
    pub window_minutes: u32,
    /// Jobs completed in the window.
    pub completed: u64,
    /// Jobs that failed for good in the window.
    pub failed: u64,
    /// `completed / window_minutes`.
    pub completed_per_minute: f64,
    /// `failed / window_minutes`.
    pub failed_per_minute: f64,
    /// Minute by minute, oldest first.
    pub minutes: Vec<MinuteCount>,
}

/// A queue's state and recent throughput.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct QueueMetrics {
    pub queue: String,
    /// Whether workers are kept from starting its jobs.
    pub paused: bool,
    pub counts: StateCounts,
    /// How long the oldest waiting job has waited, in ms; absent when none waits.
    #[oai(skip_serializing_if_is_none)]
    pub oldest_waiting_age_ms: Option<u64>,
    pub throughput: Throughput,
    /// Workers serving the queue that sent a heartbeat recently.
    pub live_workers: u64,
    /// Flow control across every worker: limits, tokens and back-pressure.
    pub flow: FlowMetrics,
    /// When this was read (Redis's clock).
    pub measured_at: DateTime<Utc>,
}

/// A global rate limit: `limit` job starts per `per_ms`, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitBody {
    /// Starts allowed per period: 1 to 10000000.
    #[oai(validator(minimum(value = "1"), maximum(value = "10000000")))]
    pub limit: i64,
    /// The period in ms: 1 to 86400000 (one day).
    #[oai(validator(minimum(value = "1"), maximum(value = "86400000")))]
    pub per_ms: i64,
    /// Most jobs that may start at once after a quiet spell (the bucket's size): 1 to
    /// 10000000; `limit` when absent.
    #[oai(validator(minimum(value = "1"), maximum(value = "10000000")))]
    #[serde(default)]
    pub burst: Option<i64>,
}

impl From<RateLimit> for RateLimitBody {
    fn from(r: RateLimit) -> Self {
        Self {
            limit: i64::try_from(r.limit).unwrap_or(i64::MAX),
            per_ms: i64::try_from(r.per.as_millis()).unwrap_or(i64::MAX),
            burst: Some(i64::try_from(r.burst).unwrap_or(i64::MAX)),
        }
    }
}

/// Who set the limits last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum LimitsSetBy {
    /// The queue has never had limits.
    Nobody,
    /// A worker's configuration (`DROVER_RATE_LIMIT`, `DROVER_MAX_ACTIVE`) at its start.
    Config,
    /// An admin through this API; configuration no longer overwrites it.
    Api,
}

/// A queue's flow control at one instant.
#[derive(Debug, Clone, Object)]
pub struct FlowMetrics {
    /// The global rate limit; absent when there is none.
    #[oai(skip_serializing_if_is_none)]
    pub rate_limit: Option<RateLimitBody>,
    /// At most this many jobs active at once across all workers; absent when uncapped.
    #[oai(skip_serializing_if_is_none)]
    pub max_active: Option<u64>,
    pub set_by: LimitsSetBy,
    /// The rate limit in job starts per second; absent without a rate limit.
    #[oai(skip_serializing_if_is_none)]
    pub rate_per_second: Option<f64>,
    /// Whole tokens in the bucket now: jobs that may start at once. Absent without a rate limit.
    #[oai(skip_serializing_if_is_none)]
    pub tokens_available: Option<u64>,
    /// Waiting jobs that the tokens in the bucket cannot start now.
    pub waiting_for_token: u64,
    /// How long a handler's rate pause (`rate_limited`) still holds back every start, in ms.
    pub rate_paused_for_ms: u64,
    /// How long a job submitted now waits for the limiter (tokens and rate pause)
    /// before it may start, in ms. Worker capacity comes on top.
    pub expected_start_delay_ms: u64,
}

impl From<FlowStatus> for FlowMetrics {
    fn from(f: FlowStatus) -> Self {
        Self {
            rate_limit: f.limits.rate_limit.map(Into::into),
            max_active: f.limits.max_active,
            set_by: match f.set_by {
                SetBy::Nobody => LimitsSetBy::Nobody,
                SetBy::Config => LimitsSetBy::Config,
                SetBy::Api => LimitsSetBy::Api,
            },
            rate_per_second: f.rate_per_second,
            tokens_available: f.tokens_available,
            waiting_for_token: f.waiting_for_token,
            rate_paused_for_ms: f.rate_paused_for_ms,
            expected_start_delay_ms: f.expected_start_delay_ms,
        }
    }
}

/// A change of a queue's flow limits. A field left out stays as it is; `null` removes
/// the limit.
#[derive(Debug, Clone, Object, Deserialize)]
#[oai(example)]
#[serde(deny_unknown_fields)]
pub struct QueuePatch {
    /// The global rate limit, or `null` for none.
    #[serde(default, deserialize_with = "present")]
    pub rate_limit: Option<Option<RateLimitBody>>,
    /// The global cap on active jobs (1 to 1000000), or `null` for none.
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
    #[serde(default, deserialize_with = "present")]
    pub max_active: Option<Option<i64>>,
}

/// A field that is present (even as `null`) is `Some`; an absent one stays `None`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl Example for QueuePatch {
    fn example() -> Self {
        Self {
            rate_limit: Some(Some(RateLimitBody {
                limit: 3,
                per_ms: 1000,
                burst: Some(5),
            })),
            max_active: Some(Some(2)),
        }
    }
}

impl QueuePatch {
    /// The checked change, or a 400 naming the field and why.
    fn check(&self) -> Result<FlowPatch, ApiError> {
        let bad = |e: LimitError| ApiError::validation(e.field, e.reason);
        let rate_limit = match self.rate_limit {
            None => None,
            Some(None) => Some(None),
            Some(Some(r)) => Some(Some(
                RateLimit::new(r.limit, r.per_ms, r.burst).map_err(bad)?,
            )),
        };
        let max_active = match self.max_active {
            None => None,
            Some(None) => Some(None),
            Some(Some(n)) => Some(Some(check_max_active(n).map_err(bad)?)),
        };
        if rate_limit.is_none() && max_active.is_none() {
            // A rule over the fields together, which the schema does not state: 422.
            return Err(ApiError::unprocessable(
                "",
                "nothing to change: send rate_limit and/or max_active (null removes a limit)",
            ));
        }
        Ok(FlowPatch {
            rate_limit,
            max_active,
        })
    }
}

/// A queue's flow control after a change.
#[derive(Debug, Clone, Object)]
pub struct QueueFlow {
    pub queue: String,
    pub flow: FlowMetrics,
}

fn metrics_example() -> QueueMetrics {
    let start = 1_767_225_600_000_i64;
    QueueMetrics {
        queue: "export".to_owned(),
        paused: false,
        counts: StateCounts {
            waiting: 12,
            delayed: 3,
            active: 4,
            completed: 5210,
            failed: 7,
        },
        oldest_waiting_age_ms: Some(850),
        throughput: Throughput {
            window_minutes: 2,
            completed: 61,
            failed: 1,
            completed_per_minute: 30.5,
            failed_per_minute: 0.5,
            minutes: vec![
                MinuteCount {
                    minute: at(start),
                    completed: 33,
                    failed: 1,
                },
                MinuteCount {
                    minute: at(start + 60_000),
                    completed: 28,
                    failed: 0,
                },
            ],
        },
        live_workers: 2,
        flow: FlowMetrics {
            rate_limit: Some(RateLimitBody {
                limit: 3,
                per_ms: 1000,
                burst: Some(5),
            }),
            max_active: Some(2),
            set_by: LimitsSetBy::Api,
            rate_per_second: Some(3.0),
            tokens_available: Some(0),
            waiting_for_token: 12,
            rate_paused_for_ms: 0,
            expected_start_delay_ms: 4_200,
        },
        measured_at: at(start + 90_000),
    }
}

impl Example for QueueMetrics {
    fn example() -> Self {
        metrics_example()
    }
}

/// Every queue's metrics.
#[derive(Debug, Clone, Object)]
pub struct AllQueueMetrics {
    pub queues: Vec<QueueMetrics>,
    /// The counts of all queues added up.
    pub totals: StateCounts,
}

/// Links of a queue.
#[derive(Debug, Clone, Object)]
pub struct QueueLinks {
    pub jobs: String,
    pub metrics: String,
}

/// A queue.
#[derive(Debug, Clone, Object)]
pub struct QueueSummary {
    pub name: String,
    pub paused: bool,
    pub counts: StateCounts,
    pub links: QueueLinks,
}

/// The queues.
#[derive(Debug, Clone, Object)]
pub struct QueueList {
    pub queues: Vec<QueueSummary>,
}

/// Whether a queue is paused, after a pause or resume.
#[derive(Debug, Clone, Object)]
pub struct PauseState {
    pub queue: String,
    pub paused: bool,
    /// False when the queue already was in that state.
    pub changed: bool,
}

/// Which finished jobs to clean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Deserialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum CleanState {
    Completed,
    Failed,
}

/// Most jobs one clean request may delete.
pub const MAX_CLEAN: u64 = 100_000;
/// Longest grace period: one year.
const MAX_GRACE_MS: u64 = 366 * 24 * 3600 * 1000;

fn default_clean_limit() -> u64 {
    1000
}

/// What to clean.
#[derive(Debug, Clone, Object, Deserialize)]
#[oai(example)]
#[serde(deny_unknown_fields)]
pub struct CleanRequest {
    /// `completed` or `failed`.
    pub state: CleanState,
    /// Only jobs that finished at least this many ms ago (at most one year).
    #[oai(validator(minimum(value = "0"), maximum(value = "31622400000")))]
    pub grace_ms: u64,
    /// At most this many jobs, oldest first: 1 to 100000 (default 1000).
    #[oai(
        default = "default_clean_limit",
        validator(minimum(value = "1"), maximum(value = "100000"))
    )]
    #[serde(default = "default_clean_limit")]
    pub limit: u64,
}

fn clean_example() -> CleanRequest {
    CleanRequest {
        state: CleanState::Completed,
        grace_ms: 3_600_000,
        limit: 1000,
    }
}

impl Example for CleanRequest {
    fn example() -> Self {
        clean_example()
    }
}

/// What a clean removed.
#[derive(Debug, Clone, Object)]
pub struct CleanResult {
    pub queue: String,
    pub state: CleanState,
    /// How many jobs were deleted.
    pub removed: u64,
}

#[derive(ApiResponse)]
enum ListQueuesResponse {
    /// Every queue.
    #[oai(status = 200)]
    Ok(Json<QueueList>),
}

#[derive(ApiResponse)]
enum AllMetricsResponse {
    /// Every queue's metrics.
    #[oai(status = 200)]
    Ok(Json<AllQueueMetrics>),
}

#[derive(ApiResponse)]
enum QueueMetricsResponse {
    /// The queue's metrics.
    #[oai(status = 200)]
    Ok(Json<QueueMetrics>),
}

#[derive(ApiResponse)]
enum PauseResponse {
    /// The queue's pause state now.
    #[oai(status = 200)]
    Ok(Json<PauseState>),
}

#[derive(ApiResponse)]
enum PatchQueueResponse {
    /// The queue's flow control now; every worker applies it within a second.
    #[oai(status = 200)]
    Ok(Json<QueueFlow>),
}

#[derive(ApiResponse)]
enum CleanResponse {
    /// How many jobs were deleted.
    #[oai(status = 200)]
    Ok(Json<CleanResult>),
}

/// Running the queues.
pub struct QueuesApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Queues")]
impl QueuesApi {
    /// List the queues
    #[oai(path = "/queues", method = "get", operation_id = "list_queues")]
    async fn list_queues(
        &self,
        _key: AdminKey,
        state: Data<&AppState>,
    ) -> Result<ListQueuesResponse, ApiError> {
        let overviews = futures::future::join_all(
            state
                .queues()
                .all()
                .map(|(name, q)| async move { (name, q.overview().await) }),
        )
        .await;
        let mut queues = Vec::with_capacity(overviews.len());
        for (name, o) in overviews {
            let o = o?;
            queues.push(QueueSummary {
                name: name.as_str().to_owned(),
                paused: o.paused,
                counts: o.counts.into(),
                links: QueueLinks {
                    jobs: format!("/api/v1/queues/{name}/jobs"),
                    metrics: format!("/api/v1/queues/{name}/metrics"),
                },
            });
        }
        Ok(ListQueuesResponse::Ok(Json(QueueList { queues })))
    }

    /// Metrics of every queue
    ///
    /// For each queue: jobs per state, paused, the age of the oldest waiting job, jobs
    /// completed and failed per minute over the last 15 minutes (or `minutes`, up to
    /// 60: the dashboard's chart shows the last hour), and live workers.
    #[oai(
        path = "/queues/metrics",
        method = "get",
        operation_id = "get_all_queue_metrics"
    )]
    async fn all_metrics(
        &self,
        _key: AdminKey,
        state: Data<&AppState>,
        /// Minutes of completed/failed counts, 1 to 60 (default 15).
        #[oai(validator(minimum(value = "1"), maximum(value = "60")))]
        minutes: Query<Option<u32>>,
    ) -> Result<AllMetricsResponse, ApiError> {
        let window = minutes.0.unwrap_or(METRICS_WINDOW_MINUTES).clamp(1, 60);
        let all = futures::future::join_all(
            state
                .queues()
                .all()
                .map(|(name, q)| queue_metrics_over(name, q, window)),
        )
        .await;
        let mut queues = Vec::with_capacity(all.len());
        let mut totals = StateCounts::default();
        for m in all {
            let m = m?;
            let c = m.counts;
            totals.waiting += c.waiting;
            totals.delayed += c.delayed;
            totals.active += c.active;
            totals.completed += c.completed;
            totals.failed += c.failed;
            queues.push(m);
        }
        Ok(AllMetricsResponse::Ok(Json(AllQueueMetrics {
            queues,
            totals,
        })))
    }

    /// Metrics of a queue
    ///
    /// Jobs per state, paused, the age of the oldest waiting job, jobs completed and
    /// failed per minute over the last 15 minutes, and live workers.
    #[oai(
        path = "/queues/:queue/metrics",
        method = "get",
        operation_id = "get_queue_metrics"
    )]
    async fn metrics(
        &self,
        _key: AdminKey,
        state: Data<&AppState>,
        /// `export`, `analysis`, `aggregation` or `cleanup`.
        queue: Path<QueueParam>,
    ) -> Result<QueueMetricsResponse, ApiError> {
        let name = queue.0.queue()?;
        let m = queue_metrics(name, state.queues().get(name)).await?;
        Ok(QueueMetricsResponse::Ok(Json(m)))
    }

    /// Pause a queue
    ///
    /// No worker anywhere starts a job of the queue until it is resumed; jobs already
    /// running finish. Jobs can still be submitted.
    #[oai(
        path = "/queues/:queue/pause",
        method = "post",
        operation_id = "pause_queue"
    )]
    async fn pause(
        &self,
        _key: AdminKey,
        state: Data<&AppState>,
        /// `export`, `analysis`, `aggregation` or `cleanup`.
        queue: Path<QueueParam>,
    ) -> Result<PauseResponse, ApiError> {
        let name = queue.0.queue()?;
        let changed = state.queues().get(name).pause().await?;
        tracing::info!(queue = %name, changed, "queue paused");
        Ok(PauseResponse::Ok(Json(PauseState {
            queue: name.as_str().to_owned(),
            paused: true,
            changed,
        })))
    }

    /// Resume a queue
    #[oai(
        path = "/queues/:queue/resume",
        method = "post",
        operation_id = "resume_queue"
    )]
    async fn resume(
        &self,
        _key: AdminKey,
        state: Data<&AppState>,
        /// `export`, `analysis`, `aggregation` or `cleanup`.
        queue: Path<QueueParam>,
    ) -> Result<PauseResponse, ApiError> {
        let name = queue.0.queue()?;
        let changed = state.queues().get(name).resume().await?;
        tracing::info!(queue = %name, changed, "queue resumed");
        Ok(PauseResponse::Ok(Json(PauseState {
            queue: name.as_str().to_owned(),
            paused: false,
            changed,
        })))
    }

    /// Change a queue's flow limits
    ///
    /// Sets the global rate limit (`limit` starts per `per_ms`, bursts of up to
    /// `burst`) and the global cap on active jobs (`max_active`) that every worker of
    /// the queue obeys together. Running workers apply it within a second, without a
    /// restart; a worker's configuration no longer overwrites it. A field left out
    /// stays as it is; `null` removes the limit.
    #[oai(
        path = "/queues/:queue",
        method = "patch",
        operation_id = "patch_queue"
    )]
    async fn patch(
        &self,
        _key: AdminKey,
        state: Data<&AppState>,
        /// `export`, `analysis`, `aggregation` or `cleanup`.
        queue: Path<QueueParam>,
        body: JsonBody<QueuePatch>,
    ) -> Result<PatchQueueResponse, ApiError> {
        let name = queue.0.queue()?;
        let patch = body.0.check()?;
        let q = state.queues().get(name);
        q.set_flow_limits(patch).await?;
        let flow = q.flow_status().await?;
        tracing::info!(
            queue = %name,
            rate_limit = flow.limits.rate_limit.map(|r| r.to_string()),
            max_active = flow.limits.max_active,
            "queue flow limits changed"
        );
        Ok(PatchQueueResponse::Ok(Json(QueueFlow {
            queue: name.as_str().to_owned(),
            flow: flow.into(),
        })))
    }

    /// Clean finished jobs
    ///
    /// Deletes completed (or failed) jobs that finished more than `grace_ms` ago, oldest
    /// first, at most `limit` of them; answers how many it deleted.
    #[oai(
        path = "/queues/:queue/clean",
        method = "post",
        operation_id = "clean_queue"
    )]
    async fn clean(
        &self,
        _key: AdminKey,
        state: Data<&AppState>,
        /// `export`, `analysis`, `aggregation` or `cleanup`.
        queue: Path<QueueParam>,
        body: JsonBody<CleanRequest>,
    ) -> Result<CleanResponse, ApiError> {
        let name = queue.0.queue()?;
        let req = body.0;
        if req.grace_ms > MAX_GRACE_MS {
            return Err(ApiError::validation(
                "grace_ms",
                "must be at most one year (31622400000 ms)",
            ));
        }
        if !(1..=MAX_CLEAN).contains(&req.limit) {
            return Err(ApiError::validation(
                "limit",
                format!("must be between 1 and {MAX_CLEAN}"),
            ));
        }
        let job_state = match req.state {
            CleanState::Completed => JobState::Completed,
            CleanState::Failed => JobState::Failed,
        };
        let removed = state
            .queues()
            .get(name)
            .clean(job_state, Duration::from_millis(req.grace_ms), req.limit)
            .await?;
        tracing::info!(queue = %name, state = %job_state, removed, "queue cleaned");
        Ok(CleanResponse::Ok(Json(CleanResult {
            queue: name.as_str().to_owned(),
            state: req.state,
            removed,
        })))
    }
}

/// Reads one queue's metrics: four round trips, sent together.
async fn queue_metrics(name: QueueName, q: &Queue) -> Result<QueueMetrics, ApiError> {
    queue_metrics_over(name, q, METRICS_WINDOW_MINUTES).await
}

/// Like [`queue_metrics`], with `window` minutes of counts.
async fn queue_metrics_over(
    name: QueueName,
    q: &Queue,
    window: u32,
) -> Result<QueueMetrics, ApiError> {
    let (overview, minutes, workers, flow) = tokio::join!(
        q.overview(),
        q.minute_stats(window),
        q.workers(),
        q.flow_status()
    );
    let overview = overview?;
    let minutes = minutes?;
    let workers = workers?;
    let flow = flow?;
    Ok(QueueMetrics {
        queue: name.as_str().to_owned(),
        paused: overview.paused,
        counts: overview.counts.into(),
        oldest_waiting_age_ms: overview.oldest_waiting_age_ms,
        throughput: throughput(&minutes),
        live_workers: workers.len() as u64,
        flow: flow.into(),
        measured_at: at(overview.now_ms),
    })
}

fn throughput(minutes: &[MinuteStats]) -> Throughput {
    let completed: u64 = minutes.iter().map(|m| m.completed).sum();
    let failed: u64 = minutes.iter().map(|m| m.failed).sum();
    let n = u32::try_from(minutes.len()).unwrap_or(u32::MAX).max(1);
    Throughput {
        window_minutes: n,
        completed,
        failed,
        completed_per_minute: completed as f64 / f64::from(n),
        failed_per_minute: failed as f64 / f64::from(n),
        minutes: minutes
            .iter()
            .map(|m| MinuteCount {
                minute: at(m.minute_ms),
                completed: m.completed,
                failed: m.failed,
            })
            .collect(),
    }
}
