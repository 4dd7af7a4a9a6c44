//! How jobs and their parts look on the wire.

use chrono::{DateTime, TimeZone, Utc};
use drover_queue::{AttemptError, JobRecord, JobState};
use poem_openapi::{Enum, Object};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum JobStateView {
    Waiting,
    Delayed,
    Active,
    Completed,
    Failed,
}

impl From<JobState> for JobStateView {
    fn from(s: JobState) -> Self {
        match s {
            JobState::Waiting => JobStateView::Waiting,
            JobState::Delayed => JobStateView::Delayed,
            JobState::Active => JobStateView::Active,
            JobState::Completed => JobStateView::Completed,
            JobState::Failed => JobStateView::Failed,
        }
    }
}

/// One failed attempt.
#[derive(Debug, Clone, Object)]
pub struct AttemptErrorView {
    /// The attempt number, from 1.
    pub attempt: u32,
    /// What went wrong.
    pub error: String,
    pub started_at: DateTime<Utc>,
    pub failed_at: DateTime<Utc>,
}

/// Links to a job and its events.
#[derive(Debug, Clone, Object)]
pub struct JobLinks {
    /// This job.
    #[oai(rename = "self")]
    pub self_: String,
    /// Its events, as Server-Sent Events.
    pub events: String,
}

/// A job.
#[derive(Debug, Clone, Object)]
pub struct JobView {
    /// The job's id (a ULID).
    pub id: String,
    pub queue: String,
    pub state: JobStateView,
    /// Last reported progress, 0 to 100.
    pub progress: u8,
    /// Last reported progress message.
    #[oai(skip_serializing_if_is_none)]
    pub progress_message: Option<String>,
    /// Attempts started so far.
    pub attempts: u32,
    pub max_attempts: u32,
    pub priority: u16,
    /// The payload as submitted.
    pub payload: serde_json::Value,
    /// What the job returned, once completed.
    #[oai(skip_serializing_if_is_none)]
    pub result: Option<serde_json::Value>,
    /// One entry per failed attempt, oldest first.
    pub errors: Vec<AttemptErrorView>,
    /// Why a failed job failed: `permanent`, `attempts_exhausted` or `stalled`.
    #[oai(skip_serializing_if_is_none)]
    pub failed_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When the job is (or was) due to run.
    pub run_at: DateTime<Utc>,
    /// When its last attempt started.
    #[oai(skip_serializing_if_is_none)]
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished, if it has.
    #[oai(skip_serializing_if_is_none)]
    pub finished_at: Option<DateTime<Utc>>,
    /// The id of the request that submitted it.
    #[oai(skip_serializing_if_is_none)]
    pub request_id: Option<String>,
    pub links: JobLinks,
}

/// Milliseconds since the epoch as a UTC time.
#[must_use]
pub fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

impl From<&AttemptError> for AttemptErrorView {
    fn from(e: &AttemptError) -> Self {
        Self {
            attempt: e.attempt,
            error: e.error.clone(),
            started_at: at(e.started_at),
            failed_at: at(e.at),
        }
    }
}

/// The links of job `id` on `queue`.
#[must_use]
pub fn links(queue: &str, id: &str) -> JobLinks {
    JobLinks {
        self_: format!("/api/v1/queues/{queue}/jobs/{id}"),
        events: format!("/api/v1/jobs/{id}/events"),
    }
}

impl From<JobRecord> for JobView {
    fn from(j: JobRecord) -> Self {
        Self {
            links: links(&j.queue, &j.id),
            state: j.state.into(),
            progress: j.progress,
            progress_message: j.progress_message,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            priority: j.priority,
            payload: j.payload,
            result: j.result,
            errors: j.errors.iter().map(Into::into).collect(),
            failed_reason: j.failed_reason,
            created_at: at(j.created_at),
            run_at: at(j.run_at),
            started_at: j.started_at.map(at),
            finished_at: j.finished_at.map(at),
            request_id: j.request_id,
            id: j.id,
            queue: j.queue,
        }
    }
}
