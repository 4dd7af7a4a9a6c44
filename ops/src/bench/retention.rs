//! `drover bench retention`: a soak of `--jobs` no-op jobs through a worker with the
//! default retention (completed jobs: 1 hour / 10,000; all archived), to show that
//! Redis memory levels off and that the archive keeps up.
//!
//! Everything runs on real parts: a `redis-server` of the benchmark's own (no
//! persistence, so `used_memory` is this run's alone), Drover's Redis backend with
//! a no-op handler in this process, and the worker's own retention enforcer and SQL
//! archive (`drover_worker::retention::SqlArchive`) writing into the database. A
//! producer keeps about `--backlog` jobs waiting, the way a steady load would.
//!
//! Every `--every` seconds it prints a sample (stderr): Redis `used_memory`, jobs
//! completed, rows in `job_history`, and archive rows/s over the interval. At the end
//! it prints one JSON line: the samples, the archive rate over the soak, and
//! whether memory levelled off: over the samples taken while jobs were still
//! coming, the mean `used_memory` of the second half is at most 10 % above the
//! first half's. Means, not peaks, because the enforcer's batches make memory a
//! sawtooth; growth with the jobs run would show in the mean as in the peak.
//!
//! Then, to measure what the archive can take rather than what the queue fed it, it
//! writes `--capacity-rows` records (copies of a real archived job) through the same
//! sink in the enforcer's batches of 1,000, into SQLite and, with `--postgres-url`,
//! into PostgreSQL → `capacity_rows_per_s`.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use apalis::prelude::*;
use clap::Args;
use drover_queue::retention::{Enforcer, EnforcerOptions, Retention};
use drover_queue::worker::{DroverBackend, JobError, WakeHub, WorkerOptions};
use drover_queue::{JobRecord, JobState, NewJob, Queue, QueueDefaults, Redis, RedisConfig};
use drover_worker::retention::SqlArchive;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde::Serialize;
use serde_json::json;

use super::support::{ScratchDb, ScratchRedis, used_memory};

/// Options of `drover bench retention`.
#[derive(Debug, Clone, Args)]
pub struct RetentionBench {
    /// No-op jobs to run through the worker.
    #[arg(long, default_value_t = 1_000_000)]
    pub jobs: u64,
    /// Jobs the worker runs at once.
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// Jobs the producer keeps waiting.
    #[arg(long, default_value_t = 20_000)]
    pub backlog: u64,
    /// Seconds between two samples.
    #[arg(long, default_value_t = 10)]
    pub every: u64,
    /// Archive into `sqlite` (a file of the run's own) or `postgres` (a fresh database
    /// on `--postgres-url`'s server).
    #[arg(long, default_value = "sqlite")]
    pub database: String,
    /// A PostgreSQL server (its URL with any database name).
    #[arg(long, env = "TEST_DATABASE_URL")]
    pub postgres_url: Option<String>,
    /// Records written straight through the archive sink to measure its capacity
    /// (0: skip).
    #[arg(long, default_value_t = 200_000)]
    pub capacity_rows: u64,
    /// The `redis-server` program.
    #[arg(long, default_value = "redis-server")]
    pub redis_server: String,
    /// Finished jobs past the count limit the archive may lag by before the queue's
    /// starts are held (the worker's `DROVER_RETENTION_HOLD_BACKLOG`; 0: never hold).
    #[arg(long, default_value_t = EnforcerOptions::default().hold_backlog)]
    pub hold_backlog: u64,
}

#[derive(Debug, Clone, Serialize)]
struct Sample {
    t_s: u64,
    used_memory_mb: f64,
    completed: u64,
    in_redis_completed: u64,
    archived: u64,
    archive_rows_per_s: f64,
    /// Whether a hold of the queue's starts for the archive was set, and not released,
    /// at the sample.
    held: bool,
}

async fn noop(_job: serde_json::Value) -> Result<(), JobError> {
    Ok(())
}

async fn count_history(db: &DatabaseConnection) -> anyhow::Result<u64> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM job_history",
        ))
        .await?
        .context("COUNT returned no row")?;
    let n: i64 = row.try_get("", "n")?;
    Ok(u64::try_from(n).unwrap_or(0))
}

async fn open_db(
    engine: &str,
    dir: &std::path::Path,
    pg: Option<&str>,
) -> anyhow::Result<ScratchDb> {
    match engine {
        "sqlite" => Ok(ScratchDb::sqlite(dir)),
        "postgres" => {
            let url =
                pg.context("--database postgres needs --postgres-url or TEST_DATABASE_URL")?;
            ScratchDb::postgres(url).await
        }
        other => anyhow::bail!("--database must be sqlite or postgres, not {other:?}"),
    }
}

/// Runs the benchmark and prints its report.
pub async fn run(args: RetentionBench) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("drover-bench-retention-")
        .tempdir()
        .context("temporary directory")?;
    let server = ScratchRedis::start(&args.redis_server, dir.path()).await?;
    let redis = Redis::new(RedisConfig::new(server.url()))?;
    let scratch = open_db(&args.database, dir.path(), args.postgres_url.as_deref()).await?;
    let result = soak(&args, &redis, &scratch, dir.path()).await;
    scratch.drop_db().await;
    let report = result?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

async fn soak(
    args: &RetentionBench,
    redis: &Redis,
    scratch: &ScratchDb,
    dir: &std::path::Path,
) -> anyhow::Result<serde_json::Value> {
    let db = drover_jobs::connect::database(&scratch.url).await?;
    drover_jobs::connect::migrate(&db).await?;
    let ns = "bench";
    let queue = Queue::new(redis.clone(), ns, "soak", QueueDefaults::default())?;
    let hub = WakeHub::start(redis.clone(), ns);
    let retention = Retention::default();
    let sink = SqlArchive::new(db.clone());
    let enforcer = Enforcer::new(
        queue.clone(),
        retention,
        sink.clone(),
        EnforcerOptions {
            hold_backlog: args.hold_backlog,
            ..EnforcerOptions::default()
        },
    )?;
    let stop = tokio_util::sync::CancellationToken::new();
    let enforcer_task = {
        let stop = stop.clone();
        tokio::spawn(async move { enforcer.run(stop).await })
    };
    let backend = DroverBackend::<serde_json::Value>::new(
        queue.clone(),
        hub.clone(),
        WorkerOptions::with_concurrency(args.concurrency),
    );
    let worker = WorkerBuilder::new(backend.worker_id().to_owned())
        .backend(backend)
        .concurrency(args.concurrency)
        .build(noop);
    let (stop_worker, rx) = tokio::sync::oneshot::channel::<()>();
    let worker_task = tokio::spawn(async move {
        worker
            .run_until(async move {
                let _ = rx.await;
                Ok::<(), std::io::Error>(())
            })
            .await
    });

    let producer = {
        let queue = queue.clone();
        let (jobs, backlog) = (args.jobs, args.backlog);
        tokio::spawn(async move {
            let mut sent = 0u64;
            while sent < jobs {
                let o = queue.overview().await?;
                if o.counts.waiting >= backlog {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                let n = (jobs - sent).min(1000);
                queue
                    .enqueue_many((0..n).map(|_| NewJob::raw("{}".to_owned())).collect())
                    .await?;
                sent += n;
            }
            anyhow::Ok(())
        })
    };

    let start = Instant::now();
    let every = Duration::from_secs(args.every.max(1));
    let mut samples: Vec<Sample> = Vec::new();
    let mut last = (Instant::now(), 0u64);
    let keep = retention.completed.max_count;
    let target_archived = args.jobs.saturating_sub(keep);
    let deadline = start + Duration::from_secs(3600);
    let mut next = start + every;
    loop {
        tokio::time::sleep_until(next.into()).await;
        next += every;
        let o = queue.overview().await?;
        let archived = count_history(&db).await?;
        let mem = used_memory(redis).await?;
        let hold: Option<i64> = redis
            .query(
                redis::cmd("HGET")
                    .arg(&queue.keys().flow)
                    .arg("archive_hold"),
            )
            .await?;
        let rate = (archived - last.1) as f64 / last.0.elapsed().as_secs_f64();
        last = (Instant::now(), archived);
        let s = Sample {
            t_s: start.elapsed().as_secs(),
            used_memory_mb: super::support::mb(mem),
            completed: archived + o.counts.completed,
            in_redis_completed: o.counts.completed,
            archived,
            archive_rows_per_s: rate.round(),
            held: hold.is_some(),
        };
        eprintln!("{}", serde_json::to_string(&s)?);
        samples.push(s);
        if archived >= target_archived && producer.is_finished() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the soak did not finish within an hour"
        );
    }
    let soak_s = start.elapsed().as_secs_f64();
    producer.await.context("producer")??;
    let _ = stop_worker.send(());
    worker_task
        .await
        .context("worker task")?
        .context("worker")?;
    stop.cancel();
    let _ = enforcer_task.await;

    let o = queue.overview().await?;
    let archived = count_history(&db).await?;
    anyhow::ensure!(
        archived + o.counts.completed == args.jobs,
        "{archived} archived + {} in Redis != {} jobs",
        o.counts.completed,
        args.jobs
    );
    let peak = |s: &[Sample]| s.iter().map(|x| x.used_memory_mb).fold(0.0, f64::max);
    let mean =
        |s: &[Sample]| s.iter().map(|x| x.used_memory_mb).sum::<f64>() / s.len().max(1) as f64;
    // The samples under load: the tail after the last job, when the archive only
    // catches up, says nothing about growth.
    let loaded = samples
        .iter()
        .position(|x| x.completed >= args.jobs)
        .unwrap_or(samples.len());
    let half = loaded / 2;
    let (first, second) = (peak(&samples[..half]), peak(&samples[half..]));
    let (first_mean, second_mean) = (mean(&samples[..half]), mean(&samples[half..loaded]));

    // A real archived job, to copy for the capacity phase.
    let template = queue
        .list(JobState::Completed, None, 1)
        .await?
        .jobs
        .into_iter()
        .next();
    let mut capacity = serde_json::Map::new();
    if args.capacity_rows > 0
        && let Some(t) = template
    {
        for engine in ["sqlite", "postgres"] {
            if engine == "postgres" && args.postgres_url.is_none() {
                continue;
            }
            let sub = dir.join(format!("capacity-{engine}"));
            std::fs::create_dir_all(&sub)?;
            let scratch = open_db(engine, &sub, args.postgres_url.as_deref()).await?;
            let r = archive_capacity(&scratch.url, &t, args.capacity_rows).await;
            scratch.drop_db().await;
            capacity.insert(engine.to_owned(), json!(r?));
        }
    }
    db.close().await.ok();
    Ok(json!({
        "bench": "retention",
        "jobs": args.jobs,
        "hold_backlog": args.hold_backlog,
        "concurrency": args.concurrency,
        "database": scratch.engine,
        "soak_s": (soak_s * 10.0).round() / 10.0,
        "jobs_per_s": (args.jobs as f64 / soak_s).round(),
        "archive_rows_per_s": (archived as f64 / soak_s).round(),
        "archived": archived,
        "left_in_redis": o.counts.completed,
        "used_memory_mb_peak_first_half": first,
        "used_memory_mb_peak_second_half": second,
        "used_memory_mb_mean_first_half": (first_mean * 10.0).round() / 10.0,
        "used_memory_mb_mean_second_half": (second_mean * 10.0).round() / 10.0,
        "levelled_off": half > 0 && second_mean <= first_mean * 1.1,
        "capacity_rows_per_s": capacity,
        "samples": samples,
    }))
}

/// Writes `rows` copies of `template` through the archive sink in batches of 1,000
/// (the enforcer's batch); returns rows/s.
async fn archive_capacity(url: &str, template: &JobRecord, rows: u64) -> anyhow::Result<f64> {
    let db = drover_jobs::connect::database(url).await?;
    drover_jobs::connect::migrate(&db).await?;
    let sink = SqlArchive::new(db.clone());
    let batch = EnforcerOptions::default().batch as u64;
    let mut written = 0u64;
    let t = Instant::now();
    while written < rows {
        let n = (rows - written).min(batch);
        let jobs: Vec<JobRecord> = (0..n)
            .map(|_| {
                let mut j = template.clone();
                j.id = ulid::Ulid::new().to_string();
                j
            })
            .collect();
        written += sink.write("soak", &jobs).await?;
    }
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        count_history(&db).await? == rows,
        "not every row was written"
    );
    db.close().await.ok();
    Ok((rows as f64 / secs).round())
}
