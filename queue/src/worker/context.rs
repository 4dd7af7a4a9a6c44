//! What a handler knows of the job it runs, and how it reports progress and errors.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apalis_core::task::Task;
use apalis_core::task::from_request::FromRequest;
use tokio_util::sync::CancellationToken;

use crate::options::Backoff;
use crate::queue::ProgressItem;

/// The job a handler runs: its identity, its attempt, and a way to report progress.
///
/// Take it as a handler argument: `async fn run(job: Payload, ctx: JobContext)`.
#[derive(Clone)]
pub struct JobContext {
    inner: Arc<Inner>,
}

struct Inner {
    id: String,
    queue: String,
    attempt: u32,
    max_attempts: u32,
    token: u64,
    request_id: Option<String>,
    traceparent: Option<String>,
    backoff: Backoff,
    progress: ProgressBuffer,
    lease_lost: CancellationToken,
    deferrals: u32,
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.inner.id)
            .field("queue", &self.inner.queue)
            .field("attempt", &self.inner.attempt)
            .finish_non_exhaustive()
    }
}

impl JobContext {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: String,
        queue: String,
        attempt: u32,
        max_attempts: u32,
        token: u64,
        request_id: Option<String>,
        traceparent: Option<String>,
        backoff: Backoff,
        progress: ProgressBuffer,
        lease_lost: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                id,
                queue,
                attempt,
                max_attempts,
                token,
                request_id,
                traceparent,
                backoff,
                progress,
                lease_lost,
                deferrals: 0,
            }),
        }
    }

    /// The same context, for a job its handlers deferred `n` times before.
    #[must_use]
    pub(crate) fn with_deferrals(self, n: u32) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.deferrals = n;
                Self {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => Self { inner },
        }
    }

    /// How often handlers deferred this job so far ([`JobError::retry_after`]); a
    /// deferral spends no attempt, and a job deferred more than `max_attempts` times
    /// fails.
    #[must_use]
    pub fn deferrals(&self) -> u32 {
        self.inner.deferrals
    }

    /// The job's id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The queue the job is on.
    #[must_use]
    pub fn queue(&self) -> &str {
        &self.inner.queue
    }

    /// This attempt's number, from 1.
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }

    /// How many attempts the job may have.
    #[must_use]
    pub fn max_attempts(&self) -> u32 {
        self.inner.max_attempts
    }

    /// Whether a failure now fails the job for good.
    #[must_use]
    pub fn is_last_attempt(&self) -> bool {
        self.inner.attempt >= self.inner.max_attempts
    }

    /// The id of the HTTP request that submitted the job, if it came through the API.
    #[must_use]
    pub fn request_id(&self) -> Option<&str> {
        self.inner.request_id.as_deref()
    }

    /// The W3C `traceparent` the job was submitted under, if it came with one: the
    /// parent of this attempt's span.
    #[must_use]
    pub fn traceparent(&self) -> Option<&str> {
        self.inner.traceparent.as_deref()
    }

    /// The job's retry delay policy.
    #[must_use]
    pub fn backoff(&self) -> &Backoff {
        &self.inner.backoff
    }

    /// Fires when this attempt's lease is lost, so another attempt may run the job.
    ///
    /// The worker fires it in two cases:
    ///
    /// - **renewal failed in time**: the worker renews each lease three times per lease
    ///   period; when no renewal has succeeded and the lease's deadline (the time the
    ///   last successful renewal was sent, plus the lease) is less than a fifth of the
    ///   lease away, it gives the lease up. Another worker can rescue the job only
    ///   after that deadline, so the handler hears of it first (a Redis outage or a
    ///   network partition does this);
    /// - **the lease was taken**: a renewal found the job rescued and leased again,
    ///   removed, or otherwise no longer held under this attempt's lease token.
    ///
    /// Once it fires the worker stops renewing the lease. A handler that writes files
    /// or rows must stop before it writes again (and must not rename a temporary file
    /// into place): await `lease_lost().cancelled()` in a `select!`, or check
    /// [`JobContext::is_lease_lost`] between batches. Whatever the handler returns is
    /// still sent, and Redis refuses it as stale if the job has moved on (it is
    /// recorded only when nobody else took the job meanwhile).
    #[must_use]
    pub fn lease_lost(&self) -> &CancellationToken {
        &self.inner.lease_lost
    }

    /// Whether this attempt's lease is lost (see [`JobContext::lease_lost`]).
    #[must_use]
    pub fn is_lease_lost(&self) -> bool {
        self.inner.lease_lost.is_cancelled()
    }

    pub(crate) fn token(&self) -> u64 {
        self.inner.token
    }

    /// Reports progress: a percentage (capped at 100), a message and a JSON object of
    /// details (rows done, rows per second, ETA…).
    ///
    /// It returns at once and never fails the job. Reports are coalesced: the worker
    /// writes the latest report of each job a few times a second, so a tight loop
    /// calling this cannot flood the event stream.
    pub fn progress(&self, percent: u8, message: impl Into<String>, data: serde_json::Value) {
        let data = if data.is_object() {
            data.to_string()
        } else {
            serde_json::json!({ "value": data }).to_string()
        };
        self.inner.progress.put(ProgressItem {
            id: self.inner.id.clone(),
            token: self.inner.token,
            percent: percent.min(100),
            message: message.into(),
            data,
        });
    }
}

impl<Args: Sync> FromRequest<Task<Args>> for JobContext {
    type Error = MissingJobContext;
    async fn from_request(task: &Task<Args>) -> Result<Self, Self::Error> {
        task.data()
            .get::<JobContext>()
            .cloned()
            .ok_or(MissingJobContext)
    }
}

/// The task did not come from a Drover queue.
#[derive(Debug, thiserror::Error)]
#[error("this task carries no Drover job context: it did not come from a Drover queue")]
pub struct MissingJobContext;

/// The latest unsent progress report of each running job of one driver.
#[derive(Clone, Default)]
pub(crate) struct ProgressBuffer {
    pending: Arc<Mutex<HashMap<String, ProgressItem>>>,
}

impl ProgressBuffer {
    fn put(&self, item: ProgressItem) {
        if let Ok(mut p) = self.pending.lock() {
            p.insert(item.id.clone(), item);
        }
    }

    /// Takes every pending report.
    pub(crate) fn take(&self) -> Vec<ProgressItem> {
        self.pending
            .lock()
            .map(|mut p| p.drain().map(|(_, v)| v).collect())
            .unwrap_or_default()
    }
}

/// How a handler says its attempt failed.
///
/// Any other error a handler returns is retryable; a panic is too.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct JobError {
    kind: JobErrorKind,
    message: String,
}

/// What should happen after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobErrorKind {
    /// Try again after the job's backoff, if attempts remain (I/O, timeouts, a busy database).
    Retryable,
    /// Not a failure: run the job again after this delay (capped by the backoff's
    /// `max_delay_ms`) without spending an attempt. A provider said "not now" (a 429
    /// with `Retry-After`). At most `max_attempts` deferrals, then the job fails.
    RetryAfter(Duration),
    /// Like `RetryAfter`, and no job of the queue starts during the delay either:
    /// the limit the provider enforces holds for every job of the queue.
    RateLimited(Duration),
    /// Fail now: retrying cannot help (bad payload, unknown dataset, unknown column).
    Permanent,
}

impl JobError {
    /// A failure worth retrying. The message keeps the whole cause chain.
    pub fn retryable(err: impl fmt::Display) -> Self {
        Self {
            kind: JobErrorKind::Retryable,
            message: format!("{err:#}"),
        }
    }

    /// Not now: run the job again after `delay`, without counting a failed attempt
    /// (see [`JobErrorKind::RetryAfter`]).
    pub fn retry_after(err: impl fmt::Display, delay: Duration) -> Self {
        Self {
            kind: JobErrorKind::RetryAfter(delay),
            message: format!("{err:#}"),
        }
    }

    /// Not now, for the whole queue: defer this job like [`JobError::retry_after`]
    /// and pause the queue's rate for `delay`, so no job of the queue starts before
    /// then (BullMQ's `rateLimit(ms)`).
    pub fn rate_limited(err: impl fmt::Display, delay: Duration) -> Self {
        Self {
            kind: JobErrorKind::RateLimited(delay),
            message: format!("{err:#}"),
        }
    }

    /// A failure retrying cannot fix.
    pub fn permanent(err: impl fmt::Display) -> Self {
        Self {
            kind: JobErrorKind::Permanent,
            message: format!("{err:#}"),
        }
    }

    /// What should happen next.
    #[must_use]
    pub fn kind(&self) -> JobErrorKind {
        self.kind
    }
}
