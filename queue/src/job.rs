//! A job as stored in Redis, read back.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::options::Backoff;
use crate::retention::JobRetention;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Ready to run, waiting for a worker.
    Waiting,
    /// Runs at a later time: scheduled, or a retry waiting out its backoff.
    Delayed,
    /// Leased by a worker that is running it.
    Active,
    /// Finished successfully.
    Completed,
    /// Finished for good without success: attempts exhausted, a permanent error, or stalled.
    Failed,
}

impl JobState {
    /// Every state, in life order.
    pub const ALL: [JobState; 5] = [
        JobState::Waiting,
        JobState::Delayed,
        JobState::Active,
        JobState::Completed,
        JobState::Failed,
    ];

    /// The lowercase name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Delayed => "delayed",
            JobState::Active => "active",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
        }
    }

    /// Whether the job is done for good.
    #[must_use]
    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Completed | JobState::Failed)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not a job state.
#[derive(Debug, thiserror::Error)]
#[error("unknown state {0:?}: expected waiting, delayed, active, completed or failed")]
pub struct UnknownState(pub String);

impl FromStr for JobState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// One failed attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptError {
    /// The attempt number, from 1.
    pub attempt: u32,
    /// What went wrong.
    pub error: String,
    /// When the attempt started, ms since the epoch.
    pub started_at: i64,
    /// When it failed, ms since the epoch.
    pub at: i64,
    /// The worker that ran it (absent in errors recorded before workers were named
    /// in them).
    #[serde(default)]
    pub worker: Option<String>,
}

/// A job read back from Redis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRecord {
    pub id: String,
    pub queue: String,
    pub state: JobState,
    /// The payload as submitted.
    pub payload: serde_json::Value,
    pub priority: u16,
    /// Attempts started so far.
    pub attempts: u32,
    pub max_attempts: u32,
    pub backoff: Option<Backoff>,
    /// Last reported progress, 0 to 100.
    pub progress: u8,
    pub progress_message: Option<String>,
    pub progress_data: Option<serde_json::Value>,
    /// What the handler returned, once completed.
    pub result: Option<serde_json::Value>,
    /// One entry per failed attempt, oldest first.
    pub errors: Vec<AttemptError>,
    /// Why a failed job failed: `permanent`, `attempts_exhausted` or `stalled`.
    pub failed_reason: Option<String>,
    /// Timestamps, ms since the epoch.
    pub created_at: i64,
    pub run_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The worker that ran (or runs) the last attempt.
    pub worker: Option<String>,
    pub idempotency_key: Option<String>,
    /// The id of the HTTP request that submitted the job.
    pub request_id: Option<String>,
    /// The W3C `traceparent` the job was submitted under.
    pub traceparent: Option<String>,
    /// The job's own retention, if it was given one at submission.
    pub retention: Option<JobRetention>,
    /// How often handlers deferred the job (`retry_after`): deferrals spend no attempt.
    pub deferrals: u32,
    /// The API key that submitted it (`api_keys.id`), if one did.
    pub submitter: Option<i64>,
}

impl JobRecord {
    /// Builds a record from the fields of its hash; `None` if the hash is empty or not a job.
    #[must_use]
    pub fn from_fields(queue: &str, id: &str, mut f: HashMap<String, String>) -> Option<Self> {
        let state: JobState = f.get("state")?.parse().ok()?;
        let num =
            |f: &HashMap<String, String>, k: &str| f.get(k).and_then(|v| v.parse::<i64>().ok());
        let text = |f: &mut HashMap<String, String>, k: &str| f.remove(k).filter(|v| !v.is_empty());
        let json = |f: &mut HashMap<String, String>, k: &str| {
            f.remove(k)
                .filter(|v| !v.is_empty())
                .and_then(|v| serde_json::from_str::<serde_json::Value>(&v).ok())
        };
        let payload = json(&mut f, "payload").unwrap_or(serde_json::Value::Null);
        let errors = f
            .remove("errors")
            .and_then(|e| serde_json::from_str::<Vec<AttemptError>>(&e).ok())
            .unwrap_or_default();
        let backoff = f
            .remove("backoff")
            .and_then(|b| serde_json::from_str::<Backoff>(&b).ok());
        Some(Self {
            id: id.to_owned(),
            queue: queue.to_owned(),
            state,
            priority: num(&f, "priority")
                .and_then(|v| u16::try_from(v).ok())
                .unwrap_or(0),
            attempts: num(&f, "attempts")
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0),
            max_attempts: num(&f, "max_attempts")
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(1),
            progress: num(&f, "progress")
                .and_then(|v| u8::try_from(v).ok())
                .unwrap_or(0),
            created_at: num(&f, "created_at").unwrap_or(0),
            run_at: num(&f, "run_at").unwrap_or(0),
            started_at: num(&f, "started_at"),
            finished_at: num(&f, "finished_at"),
            payload,
            backoff,
            progress_message: text(&mut f, "progress_message"),
            progress_data: json(&mut f, "progress_data"),
            result: json(&mut f, "result"),
            errors,
            failed_reason: text(&mut f, "failed_reason"),
            worker: text(&mut f, "worker"),
            idempotency_key: text(&mut f, "idempotency_key"),
            request_id: text(&mut f, "request_id"),
            traceparent: text(&mut f, "traceparent"),
            retention: f.remove("retention").and_then(|r| JobRetention::decode(&r)),
            deferrals: num(&f, "deferrals")
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0),
            submitter: num(&f, "submitter"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>().unwrap(), s);
        }
        assert!("stuck".parse::<JobState>().is_err());
    }

    #[test]
    fn record_from_fields() {
        let f: HashMap<String, String> = [
            ("state", "failed"),
            ("payload", r#"{"a":1}"#),
            ("attempts", "2"),
            ("max_attempts", "2"),
            ("priority", "5"),
            ("created_at", "10"),
            ("run_at", "10"),
            (
                "errors",
                r#"[{"attempt":1,"error":"x","started_at":11,"at":12}]"#,
            ),
            ("idempotency_key", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let r = JobRecord::from_fields("q", "1", f).unwrap();
        assert_eq!(r.state, JobState::Failed);
        assert_eq!(r.payload["a"], 1);
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.idempotency_key, None);
        assert!(JobRecord::from_fields("q", "1", HashMap::new()).is_none());
    }
}
