//! `drover bench ui`: how long the API takes to answer the dashboard's overview with a
//! million jobs in Redis, and how much the first view transfers.
//!
//! It runs the real API application in this process (`drover_api::app`: routing,
//! middleware, key check, handler, Redis) against `REDIS_URL` in a namespace of its own
//! (`bench-<ulid>`) and a SQLite file in a temporary directory. `--jobs` jobs are
//! enqueued across the four queues (a fifth of them delayed, the rest waiting; no worker
//! runs). Then the overview's one request, `GET /api/v1/queues/metrics?minutes=60`, is
//! made `--requests` times in a row, straight to the application (no socket, so the
//! time is the server's), with a bearer key and with a dashboard session cookie. The
//! namespace's keys and the directory are deleted at the end.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use drover_jobs::QueueName;
use drover_jobs::env::Env;
use drover_queue::{JobOptions, NewJob};
use futures::StreamExt as _;
use poem::Endpoint as _;
use poem::http::{Method, header};
use serde::Serialize;

/// Options of `drover bench ui`.
#[derive(Debug, Clone, Args)]
pub struct UiBench {
    /// Jobs to put in Redis, spread over the four queues.
    #[arg(long, default_value_t = 1_000_000)]
    pub jobs: usize,
    /// Overview requests to time.
    #[arg(long, default_value_t = 300)]
    pub requests: usize,
    /// Redis to run against (default: REDIS_URL, or redis://127.0.0.1:6379).
    #[arg(long, env = "REDIS_URL", default_value = drover_jobs::config::DEFAULT_REDIS_URL)]
    pub redis_url: String,
}

/// The figures, printed as one JSON line.
#[derive(Debug, Serialize)]
struct Report {
    jobs: usize,
    queues: usize,
    requests: usize,
    fill_s: f64,
    overview_p50_ms: f64,
    overview_p99_ms: f64,
    overview_max_ms: f64,
    overview_session_p50_ms: f64,
    overview_session_p99_ms: f64,
    overview_json_bytes: usize,
    first_view_bytes: usize,
}

const KEY: &str = "bench-admin-key-0123456789abcdef";
const OVERVIEW: &str = "/api/v1/queues/metrics?minutes=60";

/// Runs the benchmark and prints its report.
pub async fn run(args: UiBench) -> anyhow::Result<()> {
    let ns = format!("bench-{}", ulid::Ulid::new().to_string().to_lowercase());
    let dir = std::env::temp_dir().join(format!("drover-bench-ui-{ns}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let env = Env::from_pairs([
        ("REDIS_URL", args.redis_url.clone()),
        ("DROVER_REDIS_NAMESPACE", ns.clone()),
        (
            "DATABASE_URL",
            format!("sqlite://{}/bench.db?mode=rwc", dir.display()),
        ),
        ("DROVER_DATA_DIR", dir.display().to_string()),
        ("DROVER_API_KEYS", format!("admin:{KEY}")),
        ("DROVER_API_RATE_ADMIN", "0".to_owned()),
    ]);
    let config = drover_api::config::ApiConfig::from_env(&env)?;
    let state = drover_api::connect_state(config).await?;
    let result = measure(&args, &state).await;
    super::queue::cleanup(state.redis(), &ns).await;
    let _ = std::fs::remove_dir_all(&dir);
    let report = result?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

async fn measure(args: &UiBench, state: &drover_api::state::AppState) -> anyhow::Result<Report> {
    let t = Instant::now();
    let per_queue = args.jobs / QueueName::ALL.len();
    for name in QueueName::ALL {
        let q = state.queues().get(name).clone();
        let payload = r#"{"bench":true}"#.to_owned();
        let chunks: Vec<Vec<NewJob>> = (0..per_queue)
            .map(|i| {
                let job = NewJob::raw(payload.clone());
                if i % 5 == 0 {
                    job.with_options(JobOptions {
                        delay: Some(Duration::from_secs(3600)),
                        ..JobOptions::default()
                    })
                } else {
                    job
                }
            })
            .collect::<Vec<_>>()
            .chunks(1000)
            .map(<[NewJob]>::to_vec)
            .collect();
        let mut in_flight = futures::stream::iter(chunks.into_iter().map(|c| {
            let q = q.clone();
            async move { q.enqueue_many(c).await }
        }))
        .buffer_unordered(4);
        while let Some(r) = in_flight.next().await {
            r?;
        }
        eprintln!("{name}: {per_queue} jobs");
    }
    let fill_s = t.elapsed().as_secs_f64();

    let app = drover_api::app(state.clone());
    let call = |path: &str,
                method: Method,
                auth: Option<(header::HeaderName, String)>,
                body: Option<String>| {
        let mut b = poem::Request::builder().method(method).uri_str(path);
        if let Some((k, v)) = auth {
            b = b.header(k, v);
        }
        let req = match body {
            Some(s) => b.content_type("application/json").body(s),
            None => b.finish(),
        };
        let app = &app;
        async move {
            let res = app.get_response(req).await;
            let status = res.status();
            let headers = res.headers().clone();
            let body = res.into_body().into_bytes().await.unwrap_or_default();
            (status, headers, body)
        }
    };
    let bearer = || Some((header::AUTHORIZATION, format!("Bearer {KEY}")));

    // The session the dashboard would hold.
    let (status, headers, _) = call(
        "/ui/session",
        Method::POST,
        None,
        Some(format!(r#"{{"key":"{KEY}"}}"#)),
    )
    .await;
    anyhow::ensure!(status.is_success(), "sign-in answered {status}");
    let cookie = headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("sign-in set no cookie")?
        .to_owned();
    let session = || Some((header::COOKIE, cookie.clone()));

    // What the first view transfers: the page, its script and style, the session check
    // and the overview's data.
    let mut first_view_bytes = 0;
    for path in ["/ui/", "/ui/app.js", "/ui/app.css"] {
        let (s, _, b) = call(path, Method::GET, None, None).await;
        anyhow::ensure!(s.is_success(), "{path} answered {s}");
        first_view_bytes += b.len();
    }
    let (_, _, who) = call("/ui/session", Method::GET, session(), None).await;
    first_view_bytes += who.len();

    let time = |auth: bool| {
        let call = &call;
        let session = &session;
        async move {
            let mut ms = Vec::with_capacity(args.requests);
            let mut overview_json_bytes = 0;
            for i in 0..args.requests + 20 {
                let t = Instant::now();
                let (s, _, b) = call(
                    OVERVIEW,
                    Method::GET,
                    if auth { bearer() } else { session() },
                    None,
                )
                .await;
                let took = t.elapsed().as_secs_f64() * 1000.0;
                anyhow::ensure!(s.is_success(), "the overview answered {s}");
                // The first 20 warm the connections up.
                if i >= 20 {
                    ms.push(took);
                }
                if i == 0 {
                    let v: serde_json::Value = serde_json::from_slice(&b)?;
                    let total: u64 = v["queues"]
                        .as_array()
                        .map(|q| {
                            q.iter()
                                .map(|q| {
                                    q["counts"]["waiting"].as_u64().unwrap_or(0)
                                        + q["counts"]["delayed"].as_u64().unwrap_or(0)
                                })
                                .sum()
                        })
                        .unwrap_or(0);
                    anyhow::ensure!(
                        total as usize == per_queue * QueueName::ALL.len(),
                        "the overview counts {total} jobs"
                    );
                }
                overview_json_bytes = b.len();
            }
            ms.sort_by(f64::total_cmp);
            Ok::<_, anyhow::Error>((ms, overview_json_bytes))
        }
    };
    let (bearer_ms, _) = time(true).await?;
    let (session_ms, bytes) = time(false).await?;
    first_view_bytes += bytes;
    let pct = |v: &[f64], p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    Ok(Report {
        jobs: per_queue * QueueName::ALL.len(),
        queues: QueueName::ALL.len(),
        requests: args.requests,
        fill_s: (fill_s * 10.0).round() / 10.0,
        overview_p50_ms: round(pct(&bearer_ms, 0.5)),
        overview_p99_ms: round(pct(&bearer_ms, 0.99)),
        overview_max_ms: round(pct(&bearer_ms, 1.0)),
        overview_session_p50_ms: round(pct(&session_ms, 0.5)),
        overview_session_p99_ms: round(pct(&session_ms, 0.99)),
        overview_json_bytes: bytes,
        first_view_bytes,
    })
}

fn round(ms: f64) -> f64 {
    (ms * 100.0).round() / 100.0
}
