//! One id follows a job: the request id and the caller's W3C `traceparent` of a submit
//! reach the worker's JSON log lines and its exported attempt spans, and the attempt's
//! span nests under the API's request span in the caller's trace (checked with an
//! in-test OTLP/HTTP receiver).
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

use std::time::Duration;

use drover_tests::otlp::OtlpReceiver;
use drover_tests::procs::Proc;
use drover_tests::{TestDb, TestRedis, eventually_async, free_addr, namespace};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(60);
const KEY: &str = "tracing-admin-key-0123456789";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const REQUEST_ID: &str = "trace-test-request-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_s_request_id_and_traceparent_follow_the_job_into_the_worker() {
    let otlp = OtlpReceiver::start().await;
    let redis = TestRedis::start();
    let db = TestDb::sqlite();
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("worker.log");
    let addr = free_addr();
    let base = format!("http://{addr}");
    let env = |extra: &[(&'static str, String)]| {
        let mut v = vec![
            ("REDIS_URL", redis.url()),
            ("DATABASE_URL", db.url().to_owned()),
            ("DROVER_DATA_DIR", data.path().display().to_string()),
            ("DROVER_REDIS_NAMESPACE", namespace()),
            ("DROVER_API_KEYS", format!("admin:{KEY}")),
            ("DROVER_WORKER_METRICS_ADDR", "off".to_owned()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint()),
            // Export spans within a fraction of a second instead of every 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ];
        v.extend_from_slice(extra);
        v
    };
    let ns = namespace();
    let _api = Proc::start(
        "drover-api",
        &env(&[
            ("DROVER_API_ADDR", addr.to_string()),
            ("DROVER_REDIS_NAMESPACE", ns.clone()),
            ("RUST_LOG", "warn".to_owned()),
        ]),
    );
    let _worker = Proc::start_logged(
        "drover-worker",
        &env(&[
            ("DROVER_REDIS_NAMESPACE", ns.clone()),
            ("DROVER_LOG_FORMAT", "json".to_owned()),
            ("RUST_LOG", "info,drover_queue=debug".to_owned()),
        ]),
        &log,
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    eventually_async(T, "the API to be ready", || async {
        let r = client.get(format!("{base}/ready")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;

    let r = client
        .post(format!("{base}/api/v1/queues/cleanup/jobs"))
        .bearer_auth(KEY)
        .header("x-request-id", REQUEST_ID)
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .json(&json!({ "payload": { "dry_run": true } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = eventually_async(T, "the job to complete", || async {
        let job: Value = client
            .get(format!("{base}/api/v1/jobs/{id}"))
            .bearer_auth(KEY)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (job["state"] == "completed").then_some(job)
    })
    .await;
    // The job's view shows both ids.
    assert_eq!(job["request_id"], REQUEST_ID, "{job}");
    let tp = job["traceparent"].as_str().unwrap_or_default();
    assert!(tp.starts_with(&format!("00-{TRACE}-")), "{job}");

    // The API's request span is the caller's child; the attempt's span is the request
    // span's child, in the same trace, exported by the worker.
    let (request, attempt) = eventually_async(T, "both spans to be exported", || async {
        let spans = otlp.spans();
        let request = spans
            .iter()
            .find(|s| s.service == "drover-api" && s.name == "request" && s.trace_id == TRACE)?
            .clone();
        let attempt = spans
            .iter()
            .find(|s| s.service == "drover-worker" && s.name == "job" && s.trace_id == TRACE)?
            .clone();
        Some((request, attempt))
    })
    .await;
    assert_eq!(request.parent_span_id, CALLER_SPAN, "{request:?}");
    assert_eq!(
        attempt.parent_span_id, request.span_id,
        "{attempt:?} {request:?}"
    );
    assert_eq!(attempt.attributes.get("job.id"), Some(&id), "{attempt:?}");
    assert_eq!(
        attempt.attributes.get("request_id").map(String::as_str),
        Some(REQUEST_ID),
        "{attempt:?}"
    );

    // The worker's JSON log lines for the attempt carry the request id and the trace.
    let line = eventually_async(T, "a worker log line of the attempt", || async {
        let text = std::fs::read_to_string(&log).ok()?;
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["span"]["job.id"] == id.as_str())
    })
    .await;
    assert_eq!(line["span"]["request_id"], REQUEST_ID, "{line}");
    assert!(
        line["span"]["traceparent"]
            .as_str()
            .is_some_and(|t| t.contains(TRACE)),
        "{line}"
    );
}
