//! `drover bench queue`: how fast the queue enqueues, processes, starts and retries jobs.
//!
//! It runs against `REDIS_URL` in a namespace of its own (`bench-<ulid>`), with every
//! durability feature on (leases, events, counters), and one worker in this process
//! with a no-op handler. Four phases, each on a fresh queue:
//!
//! 1. **enqueue**: `--jobs` jobs enqueued in bulk (1,000 per script call, a few calls
//!    in flight) → `enqueue_jobs_per_s`.
//! 2. **process**: those jobs drained by one worker at `--concurrency` →
//!    `process_jobs_per_s` (first fetch to last acknowledgement recorded in Redis).
//! 3. **latency**: jobs enqueued one by one at a steady `--rate` per second for
//!    `--latency-secs`, the worker idle between them; the handler records the time
//!    from the enqueue call to its own start → `latency_p50_ms`, `latency_p99_ms`.
//! 4. **retry**: `--retry-jobs` jobs that each fail twice and then succeed, with a
//!    10 ms base exponential backoff → `retry_jobs_per_s`.
//!
//! With `--rate-limit N/PERIOD[:BURST]` (e.g. `1000000/s`), the process phase runs
//! again on queues that carry that global rate limit, interleaved with more runs
//! without one (`--rate-limit-rounds` pairs, the first unlimited run being phase 2),
//! all in the same invocation → `limited_process_jobs_per_s` and
//! `limited_ratio` (limited over unlimited throughput, summed over the rounds): what
//! the limiter costs when it does not limit.
//!
//! The namespace's keys are deleted at the end.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use apalis::prelude::*;
use clap::Args;
use drover_queue::flow::{FlowPatch, RateLimit};
use drover_queue::worker::{DroverBackend, JobContext, JobError, WakeHub, WorkerOptions};
use drover_queue::{
    Backoff, BackoffKind, JobOptions, NewJob, Queue, QueueDefaults, Redis, RedisConfig,
};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// Options of `drover bench queue`.
#[derive(Debug, Clone, Args)]
pub struct QueueBench {
    /// Jobs to enqueue and process.
    #[arg(long, default_value_t = 100_000)]
    pub jobs: usize,
    /// Jobs the worker runs at once.
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// Jobs leased ahead of a free slot.
    #[arg(long, default_value_t = 0)]
    pub prefetch: usize,
    /// Longest a busy worker waits for more free slots before it fetches, in ms
    /// (`DROVER_WORKER_FETCH_COALESCE_MS`; 0 fetches at once).
    #[arg(long, default_value_t = 1)]
    pub fetch_coalesce_ms: u64,
    /// Enqueue rate of the latency phase, jobs per second.
    #[arg(long, default_value_t = 500)]
    pub rate: u32,
    /// Length of the latency phase, in seconds.
    #[arg(long, default_value_t = 10)]
    pub latency_secs: u64,
    /// Jobs of the retry phase.
    #[arg(long, default_value_t = 20_000)]
    pub retry_jobs: usize,
    /// Also measure the process phase under this global rate limit (`N/PERIOD[:BURST]`,
    /// e.g. `1000000/s`), against runs without one in the same invocation.
    #[arg(long)]
    pub rate_limit: Option<RateLimit>,
    /// Pairs of (unlimited, limited) process runs with `--rate-limit`.
    #[arg(long, default_value_t = 2)]
    pub rate_limit_rounds: usize,
    /// Redis to run against (default: REDIS_URL, or redis://127.0.0.1:6379).
    #[arg(long, env = "REDIS_URL", default_value = drover_jobs::config::DEFAULT_REDIS_URL)]
    pub redis_url: String,
    /// Run the drain on this many queues at once instead (and, on a Redis Cluster,
    /// report each master's CPU per job): see `bench/shards.rs`.
    #[arg(long, default_value_t = 1)]
    pub queues: usize,
}

/// The payload of benchmark jobs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct BenchJob {
    /// Fail this many attempts before succeeding.
    #[serde(default)]
    fail: u32,
    /// Nanoseconds since the benchmark's clock started, when the job was enqueued
    /// (latency phase only).
    #[serde(default)]
    sent_ns: u64,
}

/// What the handler shares with the benchmark.
#[derive(Clone)]
pub(crate) struct Probe {
    clock: Instant,
    latencies_us: Arc<Mutex<Vec<u64>>>,
    done: Arc<AtomicU64>,
}

impl Probe {
    pub(crate) fn new() -> Self {
        Self {
            clock: Instant::now(),
            latencies_us: Arc::default(),
            done: Arc::default(),
        }
    }
}

async fn handle(job: BenchJob, ctx: JobContext, probe: Data<Probe>) -> Result<(), JobError> {
    if job.sent_ns > 0 {
        let now = u64::try_from(probe.clock.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if let Ok(mut l) = probe.latencies_us.lock() {
            l.push(now.saturating_sub(job.sent_ns) / 1000);
        }
    }
    if ctx.attempt() <= job.fail {
        return Err(JobError::retryable("planned failure"));
    }
    probe.done.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The figures, printed as one JSON line.
#[derive(Debug, Serialize)]
struct Report {
    jobs: usize,
    concurrency: usize,
    prefetch: usize,
    enqueue_jobs_per_s: f64,
    process_jobs_per_s: f64,
    latency_rate_per_s: u32,
    latency_samples: usize,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    latency_max_ms: f64,
    retry_jobs: usize,
    retry_jobs_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: Option<String>,
    /// Throughput without a limit over every unlimited process run.
    #[serde(skip_serializing_if = "Option::is_none")]
    unlimited_process_jobs_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limited_process_jobs_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limited_ratio: Option<f64>,
}

pub(crate) struct RunningWorker {
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<Result<(), WorkerError>>,
}

pub(crate) fn start_worker(
    queue: &Queue,
    hub: &WakeHub,
    opts: WorkerOptions,
    probe: Probe,
) -> RunningWorker {
    let backend = DroverBackend::<BenchJob>::new(queue.clone(), hub.clone(), opts.clone());
    let worker = WorkerBuilder::new(backend.worker_id().to_owned())
        .backend(backend)
        .data(probe)
        .concurrency(opts.concurrency)
        .build(handle);
    let (stop, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        worker
            .run_until(async move {
                let _ = rx.await;
                Ok::<(), std::io::Error>(())
            })
            .await
    });
    RunningWorker { stop, handle }
}

impl RunningWorker {
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.handle
            .await
            .context("worker task")?
            .context("worker")?;
        Ok(())
    }
}

/// Waits until `queue` has `n` completed jobs.
pub(crate) async fn wait_completed(queue: &Queue, n: u64, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let o = queue.overview().await?;
        if o.counts.completed >= n {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {n} jobs completed within {timeout:?} (failed: {})",
            o.counts.completed,
            o.counts.failed
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

/// Runs the benchmark and prints its report.
pub async fn run(args: QueueBench) -> anyhow::Result<()> {
    if args.queues > 1 {
        return super::shards::run(args).await;
    }
    let redis = Redis::new(RedisConfig::new(args.redis_url.clone()))?;
    redis
        .ping()
        .await
        .with_context(|| format!("reach Redis at {}", args.redis_url))?;
    let ns = format!("bench-{}", ulid::Ulid::new().to_string().to_lowercase());
    let hub = WakeHub::start(redis.clone(), &ns);
    let defaults = QueueDefaults {
        max_attempts: 5,
        backoff: Backoff {
            kind: BackoffKind::Exponential,
            delay_ms: 10,
            factor: 2.0,
            max_delay_ms: 1000,
            jitter: 0.0,
        },
    };
    let opts = WorkerOptions {
        prefetch: args.prefetch,
        fetch_coalesce: Duration::from_millis(args.fetch_coalesce_ms),
        ..WorkerOptions::with_concurrency(args.concurrency)
    };
    let probe = Probe::new();
    let payload = serde_json::to_string(&BenchJob {
        fail: 0,
        sent_ns: 0,
    })?;
    let result = async {
        // 1 + 2: bulk enqueue, then drain.
        let q = Queue::new(redis.clone(), &ns, "bench", defaults.clone())?;
        let t = Instant::now();
        let chunks: Vec<Vec<NewJob>> = (0..args.jobs)
            .map(|_| NewJob::raw(payload.clone()))
            .collect::<Vec<_>>()
            .chunks(1000)
            .map(<[NewJob]>::to_vec)
            .collect();
        let mut in_flight = futures::stream::iter(chunks.into_iter().map(|c| {
            let q = q.clone();
            async move { q.enqueue_many(c).await }
        }))
        .buffer_unordered(4);
        use futures::StreamExt as _;
        while let Some(r) = in_flight.next().await {
            r?;
        }
        let enqueue_s = t.elapsed().as_secs_f64();
        eprintln!("enqueued {} jobs in {enqueue_s:.2} s", args.jobs);

        let t = Instant::now();
        let w = start_worker(&q, &hub, opts.clone(), probe.clone());
        wait_completed(&q, args.jobs as u64, Duration::from_secs(600)).await?;
        let process_s = t.elapsed().as_secs_f64();
        w.stop().await?;
        eprintln!("processed {} jobs in {process_s:.2} s", args.jobs);

        // 2b: the same drain under a global rate limit, interleaved with more runs
        // without one, so both see the same machine.
        let mut flow = None;
        if let Some(limit) = args.rate_limit {
            let (mut free_s, mut free_n) = (process_s, args.jobs);
            let (mut lim_s, mut lim_n) = (0.0, 0);
            for round in 0..args.rate_limit_rounds.max(1) {
                if round > 0 {
                    let q = Queue::new(
                        redis.clone(),
                        &ns,
                        &format!("free{round}"),
                        defaults.clone(),
                    )?;
                    free_s += drain(&q, &hub, &opts, &probe, args.jobs, &payload).await?;
                    free_n += args.jobs;
                }
                let q = Queue::new(
                    redis.clone(),
                    &ns,
                    &format!("limited{round}"),
                    defaults.clone(),
                )?;
                q.set_flow_limits(FlowPatch {
                    rate_limit: Some(Some(limit)),
                    max_active: None,
                })
                .await?;
                let s = drain(&q, &hub, &opts, &probe, args.jobs, &payload).await?;
                eprintln!("processed {} jobs under {limit} in {s:.2} s", args.jobs);
                lim_s += s;
                lim_n += args.jobs;
            }
            let free = free_n as f64 / free_s;
            let limited = lim_n as f64 / lim_s;
            flow = Some((limit, free, limited));
        }

        // 3: latency at a steady rate, the worker idle between jobs.
        let q = Queue::new(redis.clone(), &ns, "latency", defaults.clone())?;
        let w = start_worker(&q, &hub, opts.clone(), probe.clone());
        // Let the worker register and go idle before the first job.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let total = (u64::from(args.rate) * args.latency_secs) as usize;
        let period = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for _ in 0..total {
            tick.tick().await;
            let sent_ns = u64::try_from(probe.clock.elapsed().as_nanos())
                .unwrap_or(u64::MAX)
                .max(1);
            let job = NewJob::new(&BenchJob { fail: 0, sent_ns })?;
            q.enqueue(job).await?;
        }
        wait_completed(&q, total as u64, Duration::from_secs(60)).await?;
        w.stop().await?;
        let mut lat = std::mem::take(
            &mut *probe
                .latencies_us
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?,
        );
        lat.sort_unstable();

        // 4: retries.
        let q = Queue::new(redis.clone(), &ns, "retry", defaults.clone())?;
        let flaky = serde_json::to_string(&BenchJob {
            fail: 2,
            sent_ns: 0,
        })?;
        let retry_opts = JobOptions::default();
        for chunk in (0..args.retry_jobs).collect::<Vec<_>>().chunks(1000) {
            q.enqueue_many(
                chunk
                    .iter()
                    .map(|_| NewJob::raw(flaky.clone()).with_options(retry_opts.clone()))
                    .collect(),
            )
            .await?;
        }
        let t = Instant::now();
        let w = start_worker(&q, &hub, opts.clone(), probe.clone());
        wait_completed(&q, args.retry_jobs as u64, Duration::from_secs(600)).await?;
        let retry_s = t.elapsed().as_secs_f64();
        w.stop().await?;
        eprintln!(
            "retried {} jobs (3 attempts each) in {retry_s:.2} s",
            args.retry_jobs
        );

        let report = Report {
            jobs: args.jobs,
            concurrency: args.concurrency,
            prefetch: args.prefetch,
            enqueue_jobs_per_s: (args.jobs as f64 / enqueue_s).round(),
            process_jobs_per_s: (args.jobs as f64 / process_s).round(),
            latency_rate_per_s: args.rate,
            latency_samples: lat.len(),
            latency_p50_ms: percentile(&lat, 0.50),
            latency_p99_ms: percentile(&lat, 0.99),
            latency_max_ms: percentile(&lat, 1.0),
            retry_jobs: args.retry_jobs,
            retry_jobs_per_s: (args.retry_jobs as f64 / retry_s).round(),
            rate_limit: flow.map(|(l, _, _)| l.to_string()),
            unlimited_process_jobs_per_s: flow.map(|(_, f, _)| f.round()),
            limited_process_jobs_per_s: flow.map(|(_, _, l)| l.round()),
            limited_ratio: flow.map(|(_, f, l)| (l / f * 1000.0).round() / 1000.0),
        };
        println!("{}", serde_json::to_string(&report)?);
        anyhow::Ok(())
    }
    .await;
    cleanup(&redis, &ns).await;
    result
}

/// Enqueues `jobs` jobs on `q` (not timed), then times one worker draining them.
async fn drain(
    q: &Queue,
    hub: &WakeHub,
    opts: &WorkerOptions,
    probe: &Probe,
    jobs: usize,
    payload: &str,
) -> anyhow::Result<f64> {
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(1000) {
        q.enqueue_many(
            chunk
                .iter()
                .map(|_| NewJob::raw(payload.to_owned()))
                .collect(),
        )
        .await?;
    }
    let t = Instant::now();
    let w = start_worker(q, hub, opts.clone(), probe.clone());
    wait_completed(q, jobs as u64, Duration::from_secs(600)).await?;
    let s = t.elapsed().as_secs_f64();
    w.stop().await?;
    Ok(s)
}

/// Deletes every key of the benchmark's namespace.
pub(crate) async fn cleanup(redis: &Redis, ns: &str) {
    let Ok(mut conn) = redis.dedicated().await else {
        return;
    };
    let pattern = format!("{{{ns}:*");
    let mut cursor: u64 = 0;
    loop {
        let r: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await;
        let Ok((next, keys)) = r else { return };
        for chunk in keys.chunks(500) {
            let _: redis::RedisResult<i64> =
                redis::cmd("UNLINK").arg(chunk).query_async(&mut conn).await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}
