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
