//! Finished jobs for retention tests: an in-process worker whose handler does what the
//! payload says, so a test can make `completed`, `failed` and `active` jobs for real.
//!
//! Payload: `{"n": …, "fail": bool, "hold_ms": …}`. `fail` fails the job for good
//! (a permanent error, so one attempt), `hold_ms` keeps it active that long.

use std::time::Duration;

use apalis::prelude::*;
use drover_queue::worker::{DroverBackend, JobContext, JobError, WakeHub, WorkerOptions};
use drover_queue::{NewJob, Queue};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The payload of a job the test worker runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TestJob {
    pub n: u64,
    #[serde(default)]
    pub fail: bool,
    #[serde(default)]
    pub hold_ms: u64,
}

impl TestJob {
    /// A job that completes with `{"n": n}`.
    #[must_use]
    pub fn ok(n: u64) -> NewJob {
        Self::new_job(Self {
            n,
            ..Self::default()
        })
    }

    /// A job that fails for good.
    #[must_use]
    pub fn failing(n: u64) -> NewJob {
        Self::new_job(Self {
            n,
            fail: true,
            hold_ms: 0,
        })
    }

    /// A job that stays active for `hold`.
    #[must_use]
    pub fn holding(n: u64, hold: Duration) -> NewJob {
        Self::new_job(Self {
            n,
            fail: false,
            hold_ms: u64::try_from(hold.as_millis()).unwrap_or(u64::MAX),
        })
    }

    fn new_job(job: Self) -> NewJob {
        NewJob::new(&job)
            .expect("a test job encodes")
            .with_request_id(format!("req-{}", job.n))
    }
}

async fn handle(job: TestJob, _ctx: JobContext) -> Result<serde_json::Value, JobError> {
    if job.hold_ms > 0 {
        // Simulated work, not synchronisation: it is how a test keeps a job `active`
        // (the retention test checks that active jobs are left alone).
        tokio::time::sleep(Duration::from_millis(job.hold_ms)).await;
    }
    if job.fail {
        return Err(JobError::permanent(format!(
            "job {} fails by design",
            job.n
        )));
    }
    Ok(serde_json::json!({ "n": job.n }))
}

/// A test worker running in this process.
pub struct TestWorker {
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), WorkerError>>>,
}

impl TestWorker {
    /// Starts one on `queue`, `concurrency` jobs at a time.
    #[must_use]
    pub fn start(queue: &Queue, hub: &WakeHub, concurrency: usize) -> Self {
        let opts = WorkerOptions {
            heartbeat_interval: Duration::from_millis(200),
            poll_interval: Duration::from_millis(200),
            close_timeout: Duration::from_secs(2),
            fetch_batch: 200,
            ack_batch: 500,
            ..WorkerOptions::with_concurrency(concurrency)
        };
        let backend = DroverBackend::<TestJob>::new(queue.clone(), hub.clone(), opts);
        let worker = WorkerBuilder::new(backend.worker_id().to_owned())
            .backend(backend)
            .concurrency(concurrency)
            .build(handle);
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            worker
                .run_until(async move {
                    let _ = rx.await;
                    Ok::<(), std::io::Error>(())
                })
                .await
        });
        Self {
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stops it, letting running jobs finish; aborts it after 10 s.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(mut h) = self.handle.take()
            && tokio::time::timeout(Duration::from_secs(10), &mut h)
                .await
                .is_err()
        {
            h.abort();
        }
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

/// Enqueues `jobs` on `queue`, runs them to the end with a worker of its own, and
/// waits until `queue` holds at least `finished` finished jobs.
///
/// # Panics
/// If they do not finish within two minutes.
pub async fn run_to_end(queue: &Queue, hub: &WakeHub, jobs: Vec<NewJob>, finished: u64) {
    queue.enqueue_many(jobs).await.expect("enqueue test jobs");
    let w = TestWorker::start(queue, hub, 50);
    crate::eventually_async(Duration::from_secs(120), "test jobs to finish", || async {
        let c = queue.overview().await.ok()?.counts;
        (c.completed + c.failed >= finished).then_some(())
    })
    .await;
    w.stop().await;
}
