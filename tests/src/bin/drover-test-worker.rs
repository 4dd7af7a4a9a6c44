//! A worker process for the queue's fault and flow-control tests: it runs one apalis
//! worker on one queue, through Drover's backend, with a handler that sleeps as long
//! as each job asks, and on a job's first run can defer it and pause the queue's
//! rate (`rate_pause_ms`), as a handler that got a 429 from its provider would.
//!
//! Configured by arguments, not the environment, so a test states everything it needs:
//! `drover-test-worker <redis-url> <namespace> <queue> <concurrency> <lease-ms> <rescue-ms> [<shutdown-ms>]`.
//! It stops gracefully on SIGTERM or Ctrl-C, the way `drover-worker` does: it stops
//! leasing, lets running jobs finish for up to `shutdown-ms` (30 s if not given), and
//! hands the rest back to the queue. Tests also kill it with SIGKILL.
//! `DROVER_REDIS_WAIT_REPLICAS`, when set, is the replicas each acknowledgement waits
//! for, as in `drover-worker`.

use std::time::Duration;

use apalis::prelude::*;
use drover_queue::worker::{DroverBackend, JobContext, JobError, WakeHub, WorkerOptions};
use drover_queue::{Queue, QueueDefaults, Redis, RedisConfig};
use serde::{Deserialize, Serialize};

/// The payload the fault tests enqueue.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FaultJob {
    n: u64,
    #[serde(default)]
    sleep_ms: u64,
    /// On the first run, defer the job and pause the queue's rate for this long.
    #[serde(default)]
    rate_pause_ms: u64,
}

async fn handle(job: FaultJob, ctx: JobContext) -> Result<u64, JobError> {
    if job.rate_pause_ms > 0 && ctx.deferrals() == 0 {
        return Err(JobError::rate_limited(
            "the provider answered 429",
            Duration::from_millis(job.rate_pause_ms),
        ));
    }
    if job.sleep_ms > 0 {
        tokio::time::sleep(Duration::from_millis(job.sleep_ms)).await;
    }
    Ok(job.n)
}

fn arg(args: &[String], i: usize, what: &str) -> String {
    args.get(i)
        .cloned()
        .unwrap_or_else(|| panic!("argument {i} ({what}) missing: see the module docs"))
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args: Vec<String> = std::env::args().collect();
    let url = arg(&args, 1, "redis url");
    let ns = arg(&args, 2, "namespace");
    let queue = arg(&args, 3, "queue");
    let concurrency: usize = arg(&args, 4, "concurrency")
        .parse()
        .expect("concurrency is a number");
    let lease_ms: u64 = arg(&args, 5, "lease ms")
        .parse()
        .expect("lease is a number");
    let rescue_ms: u64 = arg(&args, 6, "rescue ms")
        .parse()
        .expect("rescue interval is a number");

    let wait_replicas = std::env::var("DROVER_REDIS_WAIT_REPLICAS")
        .map_or(Ok(0), |v| v.parse())
        .expect("DROVER_REDIS_WAIT_REPLICAS is a number");
    let redis = Redis::new(RedisConfig {
        wait_replicas,
        ..RedisConfig::new(url)
    })
    .expect("redis config");
    let queue = Queue::new(redis.clone(), &ns, &queue, QueueDefaults::default()).expect("queue");
    let hub = WakeHub::start(redis, &ns);
    let opts = WorkerOptions {
        lease: Duration::from_millis(lease_ms),
        rescue_interval: Duration::from_millis(rescue_ms),
        heartbeat_interval: Duration::from_millis(200),
        poll_interval: Duration::from_millis(500),
        ..WorkerOptions::with_concurrency(concurrency)
    };
    let shutdown_ms: u64 = args
        .get(7)
        .map_or(Ok(30_000), |a| a.parse())
        .expect("shutdown timeout is a number");
    let factory_hub = hub.clone();
    let factory = move |_restarts| {
        let backend =
            DroverBackend::<FaultJob>::new(queue.clone(), factory_hub.clone(), opts.clone());
        WorkerBuilder::new(backend.worker_id().to_owned())
            .backend(backend)
            .concurrency(concurrency)
            .build(handle)
    };
    let stopping = hub.clone();
    Monitor::new()
        .register(factory)
        .shutdown_timeout(Duration::from_millis(shutdown_ms))
        .run_with_signal(async move {
            drover_jobs::shutdown::signal().await;
            stopping.stop_fetching();
            Ok(())
        })
        .await
        .expect("worker ran");
    hub.handed_back().await;
}
