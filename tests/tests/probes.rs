//! Every process answers `/health` while it runs and `/ready` only while Redis and the
//! database answer: readiness flips to 503 when Redis stops and back when it returns.
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

use std::time::Duration;

use drover_tests::procs::Proc;
use drover_tests::{TestDb, TestRedis, eventually_async, free_addr, namespace};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

async fn probe(base: &str, path: &str) -> Option<(u16, Value)> {
    let r = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(format!("{base}{path}"))
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.ok()?))
}

/// Waits until `path` answers `status`, and returns the body.
async fn until(base: &str, path: &str, status: u16, what: &str) -> Value {
    eventually_async(T, what, || async {
        let (s, body) = probe(base, path).await?;
        (s == status).then_some(body)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_is_unready_while_redis_is_down_and_ready_again_after() {
    let mut redis = TestRedis::start();
    let db = TestDb::sqlite();
    let data = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let base = format!("http://{addr}");
    let _worker = Proc::start(
        "drover-worker",
        &[
            ("REDIS_URL", redis.url()),
            ("DATABASE_URL", db.url().to_owned()),
            ("DROVER_DATA_DIR", data.path().display().to_string()),
            ("DROVER_REDIS_NAMESPACE", namespace()),
            ("DROVER_WORKER_METRICS_ADDR", addr.to_string()),
            ("RUST_LOG", "warn".to_owned()),
        ],
    );

    let body = until(&base, "/ready", 200, "the worker to be ready").await;
    assert_eq!(body["services"]["redis"], "up");
    assert_eq!(body["services"]["database"], "up");

    redis.kill();
    let body = until(&base, "/ready", 503, "readiness to fail without Redis").await;
    assert_eq!(body["services"]["redis"], "down", "{body}");
    assert_eq!(body["services"]["database"], "up", "{body}");
    // Liveness still answers: a worker waiting for Redis is not broken.
    let (status, health) = probe(&base, "/health").await.expect("/health answers");
    assert_eq!(status, 200);
    assert_eq!(health["process"], "drover-worker");
    assert_eq!(health["services"]["redis"], "down");

    redis.restart();
    until(&base, "/ready", 200, "readiness to return with Redis").await;
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(metrics.status(), 200);
}

/// The environment of one process of the stack, with its probe address.
fn stack_env(
    redis: &str,
    db_url: &str,
    data: &std::path::Path,
    ns: &str,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("REDIS_URL", redis.to_owned()),
        ("DATABASE_URL", db_url.to_owned()),
        ("DROVER_DATA_DIR", data.display().to_string()),
        ("DROVER_REDIS_NAMESPACE", ns.to_owned()),
        (
            "DROVER_API_KEYS",
            "admin:probes-admin-key-0123456789".to_owned(),
        ),
        ("RUST_LOG", "warn".to_owned()),
    ];
    v.extend_from_slice(extra);
    v
}

/// Starts the API, a worker and a scheduler; returns them and their probe base URLs.
fn start_stack(redis: &str, db_url: &str, data: &std::path::Path) -> (Vec<Proc>, Vec<String>) {
    let ns = namespace();
    let (api, worker, sched) = (free_addr(), free_addr(), free_addr());
    let env = |extra| stack_env(redis, db_url, data, &ns, extra);
    let procs = vec![
        Proc::start("drover-api", &env(&[("DROVER_API_ADDR", api.to_string())])),
        Proc::start(
            "drover-worker",
            &env(&[("DROVER_WORKER_METRICS_ADDR", worker.to_string())]),
        ),
        Proc::start(
            "drover-scheduler",
            &env(&[("DROVER_SCHEDULER_METRICS_ADDR", sched.to_string())]),
        ),
    ];
    let bases = [api, worker, sched]
        .iter()
        .map(|a| format!("http://{a}"))
        .collect();
    (procs, bases)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_worker_and_scheduler_are_unready_while_redis_is_down_and_ready_again_after() {
    let mut redis = TestRedis::start();
    let db = TestDb::sqlite();
    let data = tempfile::tempdir().unwrap();
    let (_procs, bases) = start_stack(&redis.url(), db.url(), data.path());
    for base in &bases {
        let body = until(base, "/ready", 200, &format!("{base} to be ready")).await;
        assert_eq!(body["services"]["redis"], "up", "{base}: {body}");
    }

    redis.kill();
    for base in &bases {
        let body = until(
            base,
            "/ready",
            503,
            &format!("{base} unready without Redis"),
        )
        .await;
        assert_eq!(body["services"]["redis"], "down", "{base}: {body}");
        assert_eq!(body["services"]["database"], "up", "{base}: {body}");
        let (status, _) = probe(base, "/health").await.expect("/health answers");
        assert_eq!(status, 200, "{base}: liveness holds while Redis is down");
    }

    redis.restart();
    for base in &bases {
        until(
            base,
            "/ready",
            200,
            &format!("{base} ready again with Redis"),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_is_unready_while_postgres_is_unreachable_and_ready_again_after() {
    let Some(db) = TestDb::postgres().await else {
        eprintln!("TEST_DATABASE_URL is not a PostgreSQL URL: nothing to test here");
        return;
    };
    let redis = TestRedis::start();
    let data = tempfile::tempdir().unwrap();
    // The processes reach PostgreSQL through a proxy that the test can stop.
    let url = db.url().to_owned();
    let after_at = url.split_once('@').map_or(url.as_str(), |(_, r)| r);
    let host_port = after_at.split('/').next().unwrap().to_owned();
    let proxy = drover_tests::Proxy::start(&host_port).await;
    let proxied = url.replacen(&host_port, &proxy.addr().to_string(), 1);
    let (_procs, bases) = start_stack(&redis.url(), &proxied, data.path());
    for base in &bases {
        until(base, "/ready", 200, &format!("{base} to be ready")).await;
    }

    proxy.pause();
    for base in &bases {
        let body = until(
            base,
            "/ready",
            503,
            &format!("{base} unready without the database"),
        )
        .await;
        assert_eq!(body["services"]["database"], "down", "{base}: {body}");
        assert_eq!(body["services"]["redis"], "up", "{base}: {body}");
    }

    proxy.resume();
    for base in &bases {
        until(
            base,
            "/ready",
            200,
            &format!("{base} ready again with the database"),
        )
        .await;
    }
}
