//! End to end: the real binaries against a Redis and a database of the test's own.
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

use std::path::Path;
use std::time::Duration;

use drover_tests::procs::Proc;
use drover_tests::{TestDb, TestRedis, eventually_async, free_addr, namespace};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(60);
/// The admin key the tests configure.
const KEY: &str = "e2e-admin-key-0123456789";

/// The environment every Drover binary of a test shares.
fn env(redis: &str, db: &TestDb, data: &Path, ns: &str) -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_URL", redis.to_owned()),
        ("DATABASE_URL", db.url().to_owned()),
        ("DROVER_DATA_DIR", data.display().to_string()),
        ("DROVER_REDIS_NAMESPACE", ns.to_owned()),
        ("DROVER_API_KEYS", format!("admin:{KEY}")),
        ("DROVER_WORKER_METRICS_ADDR", "off".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn wait_ready(base: &str) {
    eventually_async(T, "the API to be ready", || async {
        let r = client().get(format!("{base}/ready")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
}

/// Submits a cleanup job and waits until the worker has completed it.
async fn submit_and_complete(base: &str) -> Value {
    let r = client()
        .post(format!("{base}/api/v1/queues/cleanup/jobs"))
        .bearer_auth(KEY)
        .json(&json!({ "payload": { "dry_run": true } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually_async(T, "the job to complete", || async {
        let job: Value = client()
            .get(format!("{base}/api/v1/queues/cleanup/jobs/{id}"))
            .bearer_auth(KEY)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (job["state"] == "completed").then_some(job)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_submitted_over_http_is_run_by_the_worker_process() {
    let redis = TestRedis::start();
    for db in TestDb::all().await {
        let data = tempfile::tempdir().unwrap();
        let ns = namespace();
        let addr = free_addr();
        let base = format!("http://{addr}");
        let mut vars = env(&redis.url(), &db, data.path(), &ns);
        vars.push(("DROVER_API_ADDR", addr.to_string()));
        let mut api = Proc::start("drover-api", &vars);
        let mut worker = Proc::start("drover-worker", &vars);
        wait_ready(&base).await;

        let job = submit_and_complete(&base).await;
        assert_eq!(job["queue"], "cleanup");
        assert_eq!(job["attempts"], 1);
        assert_eq!(job["payload"], json!({ "dry_run": true }));
        assert!(job["finished_at"].is_string());

        // Both stop cleanly on SIGTERM.
        assert_eq!(
            worker.terminate(Duration::from_secs(30)),
            Some(0),
            "{:?}",
            db.engine()
        );
        assert_eq!(api.terminate(Duration::from_secs(30)), Some(0));
    }
}

/// Whether some `redis-server` process works in `dir` (redis changes its directory to
/// its `--dir`, and rewrites its command line, so the working directory is what tells).
fn redis_server_running_in(dir: &Path) -> bool {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "redis-server")
        })
        .any(|e| std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd == dir))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drover_up_uses_the_redis_that_answers() {
    let redis = TestRedis::start();
    let db = TestDb::sqlite();
    let data = tempfile::tempdir().unwrap();
    let ns = namespace();
    let addr = free_addr();
    let mut vars = env(&redis.url(), &db, data.path(), &ns);
    vars.push(("DROVER_API_ADDR", addr.to_string()));
    let mut up = Proc::start("drover", &vars);
    let base = format!("http://{addr}");
    wait_ready(&base).await;
    let job = submit_and_complete(&base).await;

    // The job lives in the test's Redis, and no Redis of drover's own was started.
    let key = format!("{{{ns}:cleanup}}:job:{}", job["id"].as_str().unwrap());
    let r = drover_queue::Redis::new(drover_queue::RedisConfig::new(redis.url())).unwrap();
    let exists: i64 = r.query(redis::cmd("EXISTS").arg(&key)).await.unwrap();
    assert_eq!(exists, 1);
    assert!(!data.path().join("redis").exists());
    assert_eq!(up.terminate(Duration::from_secs(60)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drover_up_starts_a_redis_of_its_own_when_none_answers_and_stops_it() {
    let db = TestDb::sqlite();
    let data = tempfile::tempdir().unwrap();
    let ns = namespace();
    let addr = free_addr();
    // Nothing listens there.
    let dead = format!("redis://{}", free_addr());
    let mut vars = env(&dead, &db, data.path(), &ns);
    vars.push(("DROVER_API_ADDR", addr.to_string()));
    let mut up = Proc::start("drover", &vars);
    let base = format!("http://{addr}");
    wait_ready(&base).await;
    submit_and_complete(&base).await;
    let redis_dir = data.path().join("redis");
    assert!(
        redis_dir.join("appendonlydir").is_dir(),
        "redis keeps an append-only file under the data dir"
    );
    assert!(redis_server_running_in(&redis_dir));
    assert_eq!(up.terminate(Duration::from_secs(60)), Some(0));
    assert!(
        !redis_server_running_in(&redis_dir),
        "drover up left its redis-server behind"
    );
}
