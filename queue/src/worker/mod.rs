//! The worker side: Drover's Redis backend for apalis workers.
//!
//! One [`DroverBackend`] feeds one apalis worker from one queue. Behind it a *driver*
//! (a few tokio tasks) talks to Redis:
//!
//! - the **fetcher** leases jobs in batches, as many as the worker has room for
//!   (`concurrency + prefetch`), and sleeps when the queue is empty or paused until a
//!   wake-up notice, the next delayed job falls due, or a slow poll;
//! - the **acknowledger** records finished attempts in batches, one script call for
//!   everything that finished since the last call, retrying through Redis outages;
//! - the fetch counts the batch's attempts, and before any of its handlers runs one
//!   O(1) call **confirms** the worker has it in hand: a batch whose reply was lost is
//!   never confirmed, so it costs no attempt (the next fetch hands it back, or the
//!   rescue does), while a handler that kills its worker still counts;
//! - the **renewer** renews the leases of held jobs, and the **lease watch** fires a
//!   job's [`JobContext::lease_lost`] when no renewal got through in time or a renewal
//!   found the job taken;
//! - **maintenance** rescues jobs whose lease expired (any worker's), and heartbeats;
//! - the **progress writer** flushes the latest progress report of each job a few
//!   times a second.
//!
//! Handlers report progress through [`JobContext::progress`], or through a
//! [`ProgressMeter`] that turns "n more rows done" into percent, rate and ETA.
//!
//! The backend's middleware ([`layer::AckLayer`]) wraps every handler call: it turns the
//! handler's result (or panic) into an outcome and hands it to the acknowledger.
//! No Redis error ends the worker: every loop backs off and tries again.

mod backend;
mod context;
mod driver;
mod layer;
mod progress;
mod wake;

use std::time::Duration;

pub use backend::DroverBackend;
pub use context::{JobContext, JobError, JobErrorKind, MissingJobContext};
pub use layer::{AckLayer, AckService, HandlerPanicked};
pub use progress::{ProgressMeter, ProgressSink};
pub use wake::WakeHub;

/// How a worker leases and runs the jobs of one queue.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Jobs run at once (enforce it with apalis's `.concurrency(n)` too).
    pub concurrency: usize,
    /// Jobs leased ahead of a free slot, so the next one starts without a round trip.
    ///
    /// 0 by default: a worker then leases only what it starts at once, so every
    /// `active` job is really running, pausing a queue stops new starts at once, and
    /// no worker hoards jobs that an idle one could run. Throughput-bound workers of
    /// short jobs may raise it; jobs leased ahead count as active and still start
    /// after a pause.
    pub prefetch: usize,
    /// How long a lease lasts without renewal; a crashed worker's jobs run again after it.
    pub lease: Duration,
    /// How often this worker looks for expired leases (anyone's) to rescue.
    pub rescue_interval: Duration,
    /// How often this worker says it is alive.
    pub heartbeat_interval: Duration,
    /// Longest an idle worker waits before looking at its queue again, in case a
    /// wake-up notice was lost.
    pub poll_interval: Duration,
    /// How often progress reports are written.
    pub progress_interval: Duration,
    /// Most jobs leased per fetch.
    pub fetch_batch: usize,
    /// Longest a busy worker waits for more free slots before it fetches.
    ///
    /// Under load every finished job frees one slot, and fetching at once would
    /// lease one job per round trip: one fetch script per job on Redis, which is
    /// the queue's bottleneck. While some jobs are still running and fewer than
    /// half the slots (or `fetch_batch`) are free, the fetch waits up to this long
    /// for more to free up, so one script leases many jobs. An idle worker never
    /// waits, and a slot waits at most this long for its next job. Zero turns
    /// it off.
    pub fetch_coalesce: Duration,
    /// Most outcomes recorded per acknowledgement.
    pub ack_batch: usize,
    /// Most delayed jobs promoted per fetch.
    pub promote_batch: usize,
    /// Most expired leases rescued per script call.
    pub rescue_batch: usize,
    /// At shutdown, how long to keep trying to record outcomes and hand back
    /// prefetched jobs before leaving them to lease expiry.
    pub close_timeout: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            concurrency: 10,
            prefetch: 0,
            lease: Duration::from_secs(30),
            rescue_interval: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
            progress_interval: Duration::from_millis(250),
            fetch_batch: 100,
            fetch_coalesce: Duration::from_millis(1),
            ack_batch: 500,
            promote_batch: 500,
            rescue_batch: 500,
            close_timeout: Duration::from_secs(10),
        }
    }
}

impl WorkerOptions {
    /// Options with this concurrency, the rest default.
    #[must_use]
    pub fn with_concurrency(concurrency: usize) -> Self {
        Self {
            concurrency: concurrency.max(1),
            ..Self::default()
        }
    }
}

/// A unique worker identity: `<queue>@<host>-<pid>-<random>`.
///
/// Unique per run, so a restarted process never collides with its previous self
/// (apalis-redis refuses to start a worker under a name seen within one heartbeat).
#[must_use]
pub fn worker_id(queue: &str) -> String {
    let rand = ulid::Ulid::new().to_string();
    format!(
        "{queue}@{}-{}-{}",
        hostname(),
        std::process::id(),
        &rand[rand.len() - 6..].to_lowercase()
    )
}

/// This machine's host name, or `localhost`.
#[must_use]
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|h| {
            h.trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
                .collect::<String>()
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
