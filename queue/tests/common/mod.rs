//! Shared set-up for the queue's tests: a queue on a Redis, and apalis workers on it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use drover_queue::worker::{DroverBackend, JobContext, JobError, WakeHub, WorkerOptions};
use drover_queue::{Backoff, Queue, QueueDefaults, Redis, RedisConfig};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The payload of the test queue.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TestJob {
    pub n: u64,
    /// Fail this many attempts before succeeding.
    #[serde(default)]
    pub fail_times: u32,
    /// Fail with a permanent error.
    #[serde(default)]
    pub permanent: bool,
    /// Sleep this long in the handler.
    #[serde(default)]
    pub sleep_ms: u64,
}

type HandlerFn = dyn Fn(
        TestJob,
        JobContext,
        WorkerContext,
    ) -> BoxFuture<'static, Result<serde_json::Value, JobError>>
    + Send
    + Sync
    + 'static;

/// What a test worker does with each job.
#[derive(Clone)]
pub struct Handler(Arc<HandlerFn>);

impl Handler {
    pub fn new<F>(f: F) -> Self
    where
        F: Fn(
                TestJob,
                JobContext,
                WorkerContext,
            ) -> BoxFuture<'static, Result<serde_json::Value, JobError>>
            + Send
            + Sync
            + 'static,
    {
        Self(Arc::new(f))
    }
}

/// Logs to the test's output when `RUST_LOG` is set.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A Redis handle and a fresh queue in a namespace of its own.
pub fn queue_on(url: &str, defaults: QueueDefaults) -> (Redis, Queue) {
    init_logs();
    let redis = Redis::new(RedisConfig::new(url)).unwrap();
    let ns = drover_tests::namespace();
    let queue = Queue::new(redis.clone(), &ns, "test", defaults).unwrap();
    (redis, queue)
}

/// The namespace of a queue (its keys start with `{ns:queue}:`).
pub fn ns_of(queue: &Queue) -> String {
    queue
        .keys()
        .prefix
        .trim_start_matches('{')
        .split(':')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A fresh queue on the machine's shared Redis, or on the process's shared cluster.
pub fn shared_queue(target: drover_tests::TestTarget) -> (Redis, Queue) {
    queue_on(&drover_tests::url_of(target), fast_defaults())
}

/// Defaults with short backoffs, so retries happen within a test.
pub fn fast_defaults() -> QueueDefaults {
    QueueDefaults {
        max_attempts: 3,
        backoff: Backoff {
            kind: drover_queue::BackoffKind::Exponential,
            delay_ms: 20,
            factor: 2.0,
            max_delay_ms: 1000,
            jitter: 0.0,
        },
    }
}

/// Worker options with short timers, for tests.
pub fn fast_options(concurrency: usize) -> WorkerOptions {
    WorkerOptions {
        lease: Duration::from_secs(2),
        rescue_interval: Duration::from_millis(200),
        heartbeat_interval: Duration::from_millis(200),
        poll_interval: Duration::from_millis(500),
        progress_interval: Duration::from_millis(20),
        close_timeout: Duration::from_secs(2),
        ..WorkerOptions::with_concurrency(concurrency)
    }
}

async fn run_handler(
    job: TestJob,
    ctx: JobContext,
    worker: WorkerContext,
    h: Data<Handler>,
) -> Result<serde_json::Value, JobError> {
    let fut = (h.0.0)(job, ctx, worker);
    fut.await
}

/// An apalis worker running in the background until stopped.
pub struct RunningWorker {
    pub id: String,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), WorkerError>>>,
}

impl RunningWorker {
    /// Stops it gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(20), h)
                .await
                .expect("worker stops in time")
                .expect("worker task")
                .expect("worker ends cleanly");
        }
    }

    /// Drops it without a graceful stop (its leases are left to expire).
    pub fn abort(mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

/// Starts a worker on `queue` running `handler`.
pub fn spawn_worker(
    queue: &Queue,
    hub: &WakeHub,
    opts: WorkerOptions,
    handler: Handler,
) -> RunningWorker {
    let backend = DroverBackend::<TestJob>::new(queue.clone(), hub.clone(), opts.clone());
    let id = backend.worker_id().to_owned();
    let worker = WorkerBuilder::new(id.clone())
        .backend(backend)
        .data(handler)
        .concurrency(opts.concurrency)
        .build(run_handler);
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        worker
            .run_until(async move {
                let _ = rx.await;
                Ok::<(), std::io::Error>(())
            })
            .await
    });
    RunningWorker {
        id,
        stop: Some(tx),
        handle: Some(handle),
    }
}

/// A handler that does what the payload says and returns `{"n": n}`.
pub fn obedient() -> Handler {
    Handler::new(|job: TestJob, ctx: JobContext, _w| {
        Box::pin(async move {
            if job.sleep_ms > 0 {
                tokio::time::sleep(Duration::from_millis(job.sleep_ms)).await;
            }
            if job.permanent {
                return Err(JobError::permanent("this job can never succeed"));
            }
            if ctx.attempt() <= job.fail_times {
                return Err(JobError::retryable(format!(
                    "planned failure {}",
                    ctx.attempt()
                )));
            }
            Ok(serde_json::json!({ "n": job.n }))
        })
    })
}

/// Waits until `id` reaches a finished state, and returns the record.
pub async fn wait_finished(queue: &Queue, id: &str, timeout: Duration) -> drover_queue::JobRecord {
    drover_tests::eventually_async(timeout, &format!("job {id} to finish"), || async {
        queue
            .get(id)
            .await
            .unwrap()
            .filter(|j| j.state.is_finished())
    })
    .await
}
