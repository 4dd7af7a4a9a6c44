//! `drover bench export`: one export of `--rows` archived jobs through a real
//! `drover-worker` process, its memory watched from outside.
//!
//! It fills the `job_history` of a scratch database (SQLite, or a fresh PostgreSQL
//! database with `--database postgres`) through the worker's own archive sink, starts
//! the release `drover-worker` next to this binary (serving only the `export` queue,
//! against a `redis-server` of the benchmark's own), enqueues one export job and
//! waits for it. It samples the worker's `VmRSS` every 20 ms (peak) and once a second
//! (the curve), and prints one JSON line: rows/s, bytes, the worker's RSS idle,
//! at its peak, and over time, and its CPU seconds.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use drover_queue::{JobRecord, JobState, NewJob, Queue, Redis, RedisConfig};
use drover_worker::retention::SqlArchive;
use serde_json::json;

use super::support::{
    Proc, RssWatch, ScratchDb, ScratchRedis, cpu_secs, mb, rss_bytes, sibling_binary,
};

/// Options of `drover bench export`.
#[derive(Debug, Clone, Args)]
pub struct ExportBench {
    /// Rows of `job_history` to export.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// `csv` or `jsonl`.
    #[arg(long, default_value = "csv")]
    pub format: String,
    /// Compress with gzip.
    #[arg(long)]
    pub gzip: bool,
    /// `sqlite` or `postgres` (a fresh database on `--postgres-url`'s server).
    #[arg(long, default_value = "sqlite")]
    pub database: String,
    /// A PostgreSQL server (its URL with any database name).
    #[arg(long, env = "TEST_DATABASE_URL")]
    pub postgres_url: Option<String>,
    /// The `redis-server` program.
    #[arg(long, default_value = "redis-server")]
    pub redis_server: String,
}

/// A completed job as the archive holds it, with a payload and result of typical size.
fn template(now_ms: i64) -> JobRecord {
    JobRecord {
        id: String::new(),
        queue: "export".into(),
        state: JobState::Completed,
        payload: json!({"source": "aggregates", "format": "csv", "filters": {"queue": "export"}}),
        priority: 0,
        attempts: 1,
        max_attempts: 3,
        backoff: None,
        progress: 100,
        progress_message: Some("done".into()),
        progress_data: None,
        result: Some(json!({"rows": 1234, "bytes": 56789})),
        errors: Vec::new(),
        failed_reason: None,
        created_at: now_ms - 2_000,
        run_at: now_ms - 2_000,
        started_at: Some(now_ms - 1_000),
        finished_at: Some(now_ms),
        worker: Some("drover-worker-bench".into()),
        idempotency_key: None,
        request_id: Some("req-0123456789abcdef".into()),
        traceparent: None,
        retention: None,
        deferrals: 0,
        submitter: None,
    }
}

/// Runs the benchmark and prints its report.
pub async fn run(args: ExportBench) -> anyhow::Result<()> {
    let worker_bin = sibling_binary("drover-worker")?;
    let dir = tempfile::Builder::new()
        .prefix("drover-bench-export-")
        .tempdir()
        .context("temporary directory")?;
    let server = ScratchRedis::start(&args.redis_server, dir.path()).await?;
    let scratch = match args.database.as_str() {
        "sqlite" => ScratchDb::sqlite(dir.path()),
        "postgres" => {
            ScratchDb::postgres(
                args.postgres_url
                    .as_deref()
                    .context("--database postgres needs --postgres-url or TEST_DATABASE_URL")?,
            )
            .await?
        }
        other => anyhow::bail!("--database must be sqlite or postgres, not {other:?}"),
    };
    let result = bench(&args, &worker_bin, &server, &scratch, dir.path()).await;
    scratch.drop_db().await;
    println!("{}", serde_json::to_string(&result?)?);
    Ok(())
}

async fn bench(
    args: &ExportBench,
    worker_bin: &std::path::Path,
    server: &ScratchRedis,
    scratch: &ScratchDb,
    dir: &std::path::Path,
) -> anyhow::Result<serde_json::Value> {
    let db = drover_jobs::connect::database(&scratch.url).await?;
    drover_jobs::connect::migrate(&db).await?;
    let t = Instant::now();
    let sink = SqlArchive::new(db.clone());
    let base = template(chrono::Utc::now().timestamp_millis() - 3_600_000);
    let mut written = 0u64;
    while written < args.rows {
        let n = (args.rows - written).min(1000);
        let jobs: Vec<JobRecord> = (0..n)
            .map(|i| {
                let mut j = base.clone();
                j.id = ulid::Ulid::new().to_string();
                j.finished_at = j.finished_at.map(|f| f + (written + i) as i64);
                j
            })
            .collect();
        written += sink.write("export", &jobs).await?;
    }
    eprintln!(
        "filled job_history with {written} rows in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    db.close().await.ok();

    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir)?;
    let env = [
        ("REDIS_URL", server.url()),
        ("DATABASE_URL", scratch.url.clone()),
        ("DROVER_DATA_DIR", data_dir.display().to_string()),
        ("DROVER_REDIS_NAMESPACE", "bench".to_owned()),
        ("DROVER_WORKER_QUEUES", "export".to_owned()),
        ("DROVER_WORKER_METRICS_ADDR", "off".to_owned()),
    ];
    let mut worker = Proc::start(worker_bin, &env, &dir.join("worker.log"))?;
    let redis = Redis::new(RedisConfig::new(server.url()))?;
    let queue = Queue::new(
        redis,
        "bench",
        "export",
        drover_jobs::QueueName::Export.defaults(),
    )?;
    // Idle: the worker is up when it has registered with its queue.
    let deadline = Instant::now() + Duration::from_secs(30);
    while queue.workers().await?.is_empty() {
        worker.check_alive("drover-worker")?;
        anyhow::ensure!(
            Instant::now() < deadline,
            "the worker did not register within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let idle = rss_bytes(worker.pid).unwrap_or(0);
    let cpu0 = cpu_secs(worker.pid).unwrap_or(0.0);
    let watch = RssWatch::start(worker.pid);
    let payload = json!({"source": "job_history", "format": args.format, "gzip": args.gzip});
    let t = Instant::now();
    let id = queue.enqueue(NewJob::new(&payload)?).await?.id;
    let mut curve = Vec::new();
    let mut next_sample = Instant::now();
    let job = loop {
        worker.check_alive("drover-worker")?;
        if Instant::now() >= next_sample {
            curve.push(mb(rss_bytes(worker.pid).unwrap_or(0)));
            next_sample += Duration::from_secs(1);
        }
        let j = queue.get(&id).await?.context("the export job vanished")?;
        match j.state {
            JobState::Completed => break j,
            JobState::Failed => anyhow::bail!("the export failed: {:?}", j.errors),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_secs(worker.pid).unwrap_or(0.0) - cpu0;
    let peak = watch.finish().await;
    worker.stop().await;
    let result = job.result.unwrap_or_default();
    let rows = result["rows"].as_u64().unwrap_or(0);
    anyhow::ensure!(rows == args.rows, "exported {rows} rows, not {}", args.rows);
    Ok(json!({
        "bench": "export",
        "database": scratch.engine,
        "format": args.format,
        "gzip": args.gzip,
        "rows": rows,
        "bytes": result["bytes"],
        "seconds": (secs * 100.0).round() / 100.0,
        "rows_per_s": (rows as f64 / secs).round(),
        "worker_cpu_s": (cpu * 100.0).round() / 100.0,
        "worker_rss_idle_mb": mb(idle),
        "worker_rss_peak_mb": mb(peak),
        "worker_rss_mb_each_second": curve,
    }))
}
