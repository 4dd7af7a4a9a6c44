//! `drover bench analysis --rows N`: the product's main workload end to end, on real
//! processes.
//!
//! 1. Generates a CSV of `N` rows: an id, two text columns of review-like sentences
//!    (a title and a body, built from a fixed vocabulary by a seeded generator, so
//!    every run reads the same file) and a numeric rating.
//! 2. Starts the release `drover-api` and `drover-worker` next to this binary, with a
//!    `redis-server` and a database of the benchmark's own.
//! 3. Uploads a calibration file (`--calibration-rows`) and the big file through
//!    `POST /api/v1/datasets` (raw `text/csv` body, streamed from disk), watching
//!    the API's `VmRSS`.
//! 4. Runs the analysis of both text columns of the calibration file, then asks
//!    `POST /api/v1/analysis/estimate` about the big one (now `measured` from the
//!    calibration run), runs it, and watches the worker's `VmRSS` and CPU time.
//! 5. Asks for an estimate of the short `title` column alone over the big file and
//!    runs that analysis too: the estimate rests on runs of both columns, so this
//!    checks that it weighs the bytes to score apart from the file's.
//!
//! It prints one JSON line: upload MB/s, the API's peak RSS during the upload,
//! analysis MB/s of CSV per worker CPU-second and per wall-second, rows/s, the
//! worker's peak RSS, and the estimates against the actual times.

use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use serde_json::{Value, json};

use super::support::{
    Proc, RssWatch, ScratchDb, ScratchRedis, cpu_secs, free_port, mb, sibling_binary,
};

/// Options of `drover bench analysis`.
#[derive(Debug, Clone, Args)]
pub struct AnalysisBench {
    /// Rows of the CSV to analyse.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Rows of the calibration run before it (0: none; the estimate then rests on
    /// the fresh-install calibration).
    #[arg(long, default_value_t = 200_000)]
    pub calibration_rows: u64,
    /// `sqlite` or `postgres` (a fresh database on `--postgres-url`'s server).
    #[arg(long, default_value = "sqlite")]
    pub database: String,
    /// A PostgreSQL server (its URL with any database name).
    #[arg(long, env = "TEST_DATABASE_URL")]
    pub postgres_url: Option<String>,
    /// Where to write the CSV files (default: a temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The `redis-server` program.
    #[arg(long, default_value = "redis-server")]
    pub redis_server: String,
}

const KEY: &str = "bench-admin-key-0123456789abcdef";

/// A small fast generator (xorshift64*), seeded: the same file every run.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

const OPENERS: &[&str] = &[
    "The food was",
    "Our room was",
    "The staff were",
    "Delivery was",
    "The product is",
    "Customer service was",
    "The battery life is",
    "This hotel is",
    "The movie was",
    "Overall the experience was",
];
const BOOSTERS: &[&str] = &[
    "",
    "",
    "very ",
    "really ",
    "extremely ",
    "not ",
    "not very ",
    "kind of ",
    "VERY ",
];
const ADJECTIVES: &[&str] = &[
    "great",
    "good",
    "terrible",
    "awful",
    "fine",
    "okay",
    "amazing",
    "disappointing",
    "excellent",
    "bad",
    "slow",
    "friendly",
    "rude",
    "clean",
    "dirty",
    "perfect",
    "horrible",
    "average",
    "wonderful",
    "broken",
];
const TAILS: &[&str] = &[
    ".",
    "!",
    "!!",
    " :)",
    ", but the price was too high.",
    ", and we will come back.",
    ", though nothing special.",
    "... would not recommend.",
    ", love it!",
    ", meh.",
];
const TITLES: &[&str] = &[
    "Great value",
    "Never again",
    "Pretty good",
    "Not worth it",
    "Loved it",
    "Meh",
    "Terrible experience",
    "Five stars",
    "Could be better",
    "Absolutely fantastic",
];

fn sentence(g: &mut Gen, out: &mut String) {
    out.push_str(g.pick(OPENERS));
    out.push(' ');
    out.push_str(g.pick(BOOSTERS));
    out.push_str(g.pick(ADJECTIVES));
    out.push_str(g.pick(TAILS));
}

/// Writes `rows` rows to `path`; returns its size.
fn generate(path: &Path, rows: u64, seed: u64) -> anyhow::Result<u64> {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    w.write_all(b"id,title,review,rating\n")?;
    let mut g = Gen(seed | 1);
    let mut body = String::with_capacity(512);
    for i in 0..rows {
        body.clear();
        for k in 0..(2 + g.next() % 3) {
            if k > 0 {
                body.push(' ');
            }
            sentence(&mut g, &mut body);
        }
        // The body holds commas: quote it as CSV does.
        writeln!(
            w,
            "{i},{},\"{}\",{}",
            g.pick(TITLES),
            body.replace('"', "\"\""),
            1 + g.next() % 5
        )?;
    }
    // On disk before anything is measured: a 5 GB file still being written back would
    // take the disk from the upload (it halved the upload's rate).
    w.into_inner()
        .map_err(std::io::IntoInnerError::into_error)?
        .sync_all()?;
    Ok(std::fs::metadata(path)?.len())
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(3600))
        .build()?)
}

async fn json_ok(r: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "{what}: {status} {body}");
    serde_json::from_str(&body).with_context(|| format!("{what}: {body}"))
}

struct Upload {
    id: String,
    bytes: u64,
    secs: f64,
    api_peak_rss: u64,
}

async fn upload(base: &str, api_pid: u32, path: &Path, name: &str) -> anyhow::Result<Upload> {
    let bytes = std::fs::metadata(path)?.len();
    let file = tokio::fs::File::open(path).await?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
    let watch = RssWatch::start(api_pid);
    let t = Instant::now();
    let r = client()?
        .post(format!("{base}/api/v1/datasets?name={name}"))
        .bearer_auth(KEY)
        .header("content-type", "text/csv")
        .header("content-length", bytes)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await?;
    let v = json_ok(r, "upload").await?;
    let secs = t.elapsed().as_secs_f64();
    let api_peak_rss = watch.finish().await;
    Ok(Upload {
        id: v["id"].as_str().context("upload: no id")?.to_owned(),
        bytes,
        secs,
        api_peak_rss,
    })
}

struct Run {
    secs: f64,
    cpu: f64,
    worker_peak_rss: u64,
    view: Value,
}

/// The columns the bench analyses: both text columns.
const BOTH: &[&str] = &["title", "review"];

async fn analyse(
    base: &str,
    worker_pid: u32,
    dataset: &str,
    columns: &[&str],
) -> anyhow::Result<Run> {
    let c = client()?;
    let cpu0 = cpu_secs(worker_pid).unwrap_or(0.0);
    let watch = RssWatch::start(worker_pid);
    let t = Instant::now();
    let r = c
        .post(format!("{base}/api/v1/queues/analysis/jobs"))
        .bearer_auth(KEY)
        .json(&json!({"payload": {"dataset_id": dataset, "columns": columns, "chain_type": "sentiment"}}))
        .send()
        .await?;
    let job = json_ok(r, "submit the analysis").await?;
    let id = job["id"].as_str().context("submit: no id")?.to_owned();
    let view = loop {
        let r = c
            .get(format!("{base}/api/v1/analysis/{id}"))
            .bearer_auth(KEY)
            .send()
            .await?;
        if r.status() == 200 {
            let v: Value = r.json().await?;
            match v["status"].as_str() {
                Some("completed") => break v,
                Some("failed") => anyhow::bail!("the analysis failed: {v}"),
                _ => {}
            }
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(7200),
            "the analysis did not finish within 2 hours"
        );
        // Often, so that the time measured is the run's and not the poll's (at 50 ms the
        // poll alone added 25 ms on average, a tenth of a calibration run's time).
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_secs(worker_pid).unwrap_or(0.0) - cpu0;
    Ok(Run {
        secs,
        cpu,
        worker_peak_rss: watch.finish().await,
        view,
    })
}

async fn estimate(base: &str, dataset: &str, columns: &[&str]) -> anyhow::Result<Value> {
    let r = client()?
        .post(format!("{base}/api/v1/analysis/estimate"))
        .bearer_auth(KEY)
        .json(&json!({"dataset_id": dataset, "columns": columns}))
        .send()
        .await?;
    json_ok(r, "estimate").await
}

/// Runs the benchmark and prints its report.
pub async fn run(args: AnalysisBench) -> anyhow::Result<()> {
    let api_bin = sibling_binary("drover-api")?;
    let worker_bin = sibling_binary("drover-worker")?;
    let tmp = tempfile::Builder::new()
        .prefix("drover-bench-analysis-")
        .tempdir_in(args.dir.as_deref().unwrap_or(&std::env::temp_dir()))
        .context("temporary directory")?;
    let dir = tmp.path();
    let server = ScratchRedis::start(&args.redis_server, dir).await?;
    let scratch = match args.database.as_str() {
        "sqlite" => ScratchDb::sqlite(dir),
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
    let result = bench(&args, &api_bin, &worker_bin, &server, &scratch, dir).await;
    scratch.drop_db().await;
    println!("{}", serde_json::to_string(&result?)?);
    Ok(())
}

async fn bench(
    args: &AnalysisBench,
    api_bin: &Path,
    worker_bin: &Path,
    server: &ScratchRedis,
    scratch: &ScratchDb,
    dir: &Path,
) -> anyhow::Result<Value> {
    let t = Instant::now();
    let big = dir.join("reviews.csv");
    let size = generate(&big, args.rows, 42)?;
    let cal = dir.join("calibration.csv");
    if args.calibration_rows > 0 {
        generate(&cal, args.calibration_rows, 7)?;
    }
    eprintln!(
        "generated {} rows, {:.1} MB, in {:.1} s",
        args.rows,
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir)?;
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let env = [
        ("REDIS_URL", server.url()),
        ("DATABASE_URL", scratch.url.clone()),
        ("DROVER_DATA_DIR", data_dir.display().to_string()),
        ("DROVER_REDIS_NAMESPACE", "bench".to_owned()),
        ("DROVER_API_KEYS", format!("admin:{KEY}")),
        ("DROVER_API_ADDR", format!("127.0.0.1:{port}")),
        ("DROVER_WORKER_QUEUES", "analysis".to_owned()),
        ("DROVER_WORKER_METRICS_ADDR", "off".to_owned()),
        (
            "DROVER_DATASET_MAX_BYTES",
            (size * 2 + (1 << 30)).to_string(),
        ),
    ];
    let mut api = Proc::start(api_bin, &env, &dir.join("api.log"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        api.check_alive("drover-api")?;
        if let Ok(r) = client()?.get(format!("{base}/ready")).send().await
            && r.status() == 200
        {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the API was not ready within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The worker after the API: the API has migrated the database.
    let mut worker = Proc::start(worker_bin, &env, &dir.join("worker.log"))?;

    let mut calibration = Value::Null;
    if args.calibration_rows > 0 {
        let up = upload(&base, api.pid, &cal, "calibration.csv").await?;
        // The worker calibrates in the background at its start: give it a moment.
        let deadline = Instant::now() + Duration::from_secs(30);
        let before = loop {
            let e = estimate(&base, &up.id, BOTH).await?;
            if e["basis"] != "api_sample" || Instant::now() > deadline {
                break e;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let run = analyse(&base, worker.pid, &up.id, BOTH).await?;
        calibration = json!({
            "rows": args.calibration_rows,
            "mb": mb(up.bytes),
            "seconds": round2(run.secs),
            "handler_seconds": handler_secs(&run.view),
            "fresh_install_estimate_s": before["seconds"],
            "fresh_install_basis": before["basis"],
            "fresh_install_estimate_error_pct": round2((before["seconds"].as_f64().unwrap_or(0.0) / run.secs - 1.0) * 100.0),
        });
    }
    let up = upload(&base, api.pid, &big, "reviews.csv").await?;
    let est = estimate(&base, &up.id, BOTH).await?;
    worker.check_alive("drover-worker")?;
    let run = analyse(&base, worker.pid, &up.id, BOTH).await?;
    // The short title alone, on the same file: the estimate, from runs of both
    // columns, must see that it has a small part of their scoring to do.
    let one_est = estimate(&base, &up.id, &["title"]).await?;
    let one = analyse(&base, worker.pid, &up.id, &["title"]).await?;
    api.check_alive("drover-api")?;
    worker.check_alive("drover-worker")?;
    worker.stop().await;
    api.stop().await;

    let rows = run.view["rows"].as_u64().unwrap_or(0);
    anyhow::ensure!(rows == args.rows, "analysed {rows} rows, not {}", args.rows);
    let est_s = est["seconds"].as_f64().unwrap_or(0.0);
    Ok(json!({
        "bench": "analysis",
        "database": scratch.engine,
        "rows": rows,
        "csv_mb": mb(size),
        "upload_mb_per_s": round2(size as f64 / 1e6 / up.secs),
        "api_peak_rss_mb_during_upload": mb(up.api_peak_rss),
        "analysis_seconds": round2(run.secs),
        "handler_seconds": handler_secs(&run.view),
        "worker_cpu_s": round2(run.cpu),
        "analysis_mb_per_cpu_s": round2(size as f64 / 1e6 / run.cpu.max(1e-3)),
        "analysis_mb_per_wall_s": round2(size as f64 / 1e6 / run.secs),
        "rows_per_s": (rows as f64 / run.secs).round(),
        "worker_peak_rss_mb": mb(run.worker_peak_rss),
        "estimate_s": est_s,
        "estimate_basis": est["basis"],
        "estimate_fixed_s": est["fixed_seconds"],
        "estimate_error_pct": round2((est_s / run.secs - 1.0) * 100.0),
        "malformed_rows": run.view["malformed_rows"],
        "estimate_scoring_s": est["scoring_seconds"],
        "calibration": calibration,
        "title_only": {
            "estimate_s": one_est["seconds"],
            "analysis_seconds": round2(one.secs),
            "handler_seconds": handler_secs(&one.view),
            "estimate_error_pct": round2((one_est["seconds"].as_f64().unwrap_or(0.0) / one.secs - 1.0) * 100.0),
            "analysis_mb_per_cpu_s": round2(size as f64 / 1e6 / one.cpu.max(1e-3)),
        },
    }))
}

/// The time the worker's handler measured for a run (the rest of the bench's time is
/// queueing, pick-up and the bench's own polling).
fn handler_secs(view: &Value) -> f64 {
    round2(view["elapsed_ms"].as_f64().unwrap_or(0.0) / 1000.0)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
