//! How jobs and their parts look on the wire.

use chrono::{DateTime, TimeZone, Utc};
use drover_entities::job_history;
use drover_queue::{AttemptError, JobRecord, JobState};
use poem_openapi::types::Example;
use poem_openapi::{Enum, Object};
use serde::Deserialize;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Deserialize)]
#[oai(rename = "JobState", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
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

impl From<JobStateView> for JobState {
    fn from(s: JobStateView) -> Self {
        match s {
            JobStateView::Waiting => JobState::Waiting,
            JobStateView::Delayed => JobState::Delayed,
            JobStateView::Active => JobState::Active,
            JobStateView::Completed => JobState::Completed,
            JobStateView::Failed => JobState::Failed,
        }
    }
}

/// One failed attempt.
#[derive(Debug, Clone, Object)]
#[oai(rename = "AttemptError")]
pub struct AttemptErrorView {
    /// The attempt number, from 1.
    pub attempt: u32,
    /// What went wrong.
    pub error: String,
    pub started_at: DateTime<Utc>,
    pub failed_at: DateTime<Utc>,
    /// The worker that ran the attempt (its id, as on the workers page).
    pub worker: Option<String>,
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
#[oai(rename = "Job", example)]
pub struct JobView {
    /// The job's id (a ULID).
    pub id: String,
    pub queue: String,
    pub state: JobStateView,
    /// Last reported progress, 0 to 100 (an archived job: 100 if it completed, else 0).
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
    /// When the job is (or was) due to run (an archived job: when it was created).
    pub run_at: DateTime<Utc>,
    /// When its last attempt started.
    #[oai(skip_serializing_if_is_none)]
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished, if it has.
    #[oai(skip_serializing_if_is_none)]
    pub finished_at: Option<DateTime<Utc>>,
    /// The id of the request that submitted it (its `X-Request-Id`).
    #[oai(skip_serializing_if_is_none)]
    pub request_id: Option<String>,
    /// The W3C `traceparent` it was submitted under: its attempts' spans are children
    /// of that span (the submit request's, when the API exports spans).
    #[oai(skip_serializing_if_is_none)]
    pub traceparent: Option<String>,
    /// When it was moved out of Redis into the database's archive, if it was.
    #[oai(skip_serializing_if_is_none)]
    pub archived_at: Option<DateTime<Utc>>,
    pub links: JobLinks,
}

fn job_example() -> JobView {
    let id = "01JD4X8Q7W3K9N2M5P6R8T0V1Y";
    let t = |s: i64| at(1_767_225_600_000 + s * 1000);
    JobView {
        id: id.to_owned(),
        queue: "export".to_owned(),
        state: JobStateView::Completed,
        progress: 100,
        progress_message: Some("12000 rows written".to_owned()),
        attempts: 2,
        max_attempts: 3,
        priority: 0,
        payload: serde_json::json!({"source": "job_history", "format": "csv"}),
        result: Some(serde_json::json!({"rows": 12000, "bytes": 1_048_576})),
        errors: vec![AttemptErrorView {
            attempt: 1,
            error: "database is locked".to_owned(),
            started_at: t(1),
            failed_at: t(2),
            worker: Some("worker-7f3a".to_owned()),
        }],
        failed_reason: None,
        created_at: t(0),
        run_at: t(0),
        started_at: Some(t(7)),
        finished_at: Some(t(9)),
        request_id: Some("01JD4X8Q7VZJ3C2B1A0S9D8F7G".to_owned()),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()),
        archived_at: None,
        links: links("export", id),
    }
}

impl Example for JobView {
    fn example() -> Self {
        job_example()
    }
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
            worker: e.worker.clone(),
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
            traceparent: j.traceparent,
            archived_at: None,
            id: j.id,
            queue: j.queue,
        }
    }
}

impl From<job_history::Model> for JobView {
    fn from(j: job_history::Model) -> Self {
        let state = match j.state.as_str() {
            "completed" => JobStateView::Completed,
            _ => JobStateView::Failed,
        };
        let json = |s: &str| serde_json::from_str::<serde_json::Value>(s).ok();
        let errors: Vec<AttemptError> = serde_json::from_str(&j.errors).unwrap_or_default();
        Self {
            links: links(&j.queue, &j.id),
            state,
            progress: if state == JobStateView::Completed {
                100
            } else {
                0
            },
            progress_message: None,
            attempts: u32::try_from(j.attempts).unwrap_or(0),
            max_attempts: u32::try_from(j.max_attempts).unwrap_or(0),
            priority: u16::try_from(j.priority).unwrap_or(0),
            payload: json(&j.payload).unwrap_or(serde_json::Value::Null),
            result: j.result.as_deref().and_then(json),
            errors: errors.iter().map(Into::into).collect(),
            failed_reason: j.failed_reason,
            created_at: j.created_at,
            run_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
            request_id: j.request_id,
            traceparent: None,
            archived_at: Some(j.archived_at),
            id: j.id,
            queue: j.queue,
        }
    }
}

/// A page of jobs.
#[derive(Debug, Clone, Object)]
#[oai(rename = "JobPage")]
pub struct JobPage {
    /// The jobs, in run order (waiting, delayed, active) or newest first (completed, failed).
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
    pub links: PageLinks,
}

/// Links of a page.
#[derive(Debug, Clone, Object)]
pub struct PageLinks {
    /// The next page, if there is one.
    #[oai(skip_serializing_if_is_none)]
    pub next: Option<String>,
}

/// Encodes a query-string value: everything but unreserved characters as `%XX`.
#[must_use]
pub fn encode_query(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode_query("1712.5|01AB"), "1712.5%7C01AB");
        assert_eq!(encode_query("a b&c"), "a%20b%26c");
    }
}
