#![allow(clippy::unwrap_used)] // Tests fail by panicking.
//! Submitting, listing and reading jobs over HTTP, on a real Redis and database.

mod common;

use common::*;
use drover_jobs::QueueName;
use drover_queue::JobState;
use drover_tests::each_target;
use serde_json::{Value, json};

each_target! {
#[tokio::test]
async fn a_submitted_job_reads_back_with_its_request_id_and_links(target) {
    let api = TestApi::on(target).await;
    let r = Reply::of(
        api.req(
            reqwest::Method::POST,
            "/api/v1/queues/cleanup/jobs",
            SUBMITTER,
        )
        .header("X-Request-Id", "req-from-client-1")
        .json(&json!({ "payload": { "dry_run": true } }))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("x-request-id"), Some("req-from-client-1"));
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 26, "a ULID");
    assert_eq!(r.body["created"], true);
    assert_eq!(r.body["state"], "waiting");
    assert_eq!(r.body["queue"], "cleanup");
    let location = format!("/api/v1/queues/cleanup/jobs/{id}");
    assert_eq!(r.header("location"), Some(location.as_str()));
    assert_eq!(r.body["links"]["self"], location);
    assert_eq!(
        r.body["links"]["events"],
        format!("/api/v1/jobs/{id}/events")
    );

    let job = api.get(&location, SUBMITTER).await;
    assert_eq!(job.status, 200, "{}", job.body);
    let b = &job.body;
    assert_eq!(b["id"], id.as_str());
    assert_eq!(b["queue"], "cleanup");
    assert_eq!(b["state"], "waiting");
    assert_eq!(b["progress"], 0);
    assert_eq!(b["attempts"], 0);
    assert_eq!(b["max_attempts"], 3, "the cleanup queue's default");
    assert_eq!(b["payload"], json!({ "dry_run": true }));
    assert_eq!(b["errors"], json!([]));
    assert_eq!(b["request_id"], "req-from-client-1");
    assert!(b["created_at"].as_str().is_some() && b["run_at"].as_str().is_some());
    assert!(b.get("result").is_none() && b.get("finished_at").is_none());
    assert_eq!(b["links"]["events"], format!("/api/v1/jobs/{id}/events"));

    // Any queue: the same job.
    let any = api.get(&format!("/api/v1/jobs/{id}"), SUBMITTER).await;
    assert_eq!(any.status, 200);
    assert_eq!(any.body, job.body);

    // Without an X-Request-Id, the API makes one, and the job keeps it.
    let r = api
        .post(
            "/api/v1/queues/cleanup/jobs",
            SUBMITTER,
            json!({ "payload": {} }),
        )
        .await;
    let rid = r.header("x-request-id").unwrap().to_owned();
    assert_eq!(rid.len(), 26);
    let stored = api
        .queue(QueueName::Cleanup)
        .get(r.body["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.request_id.as_deref(), Some(rid.as_str()));
}
}

each_target! {
#[tokio::test]
async fn options_are_applied(target) {
    let api = TestApi::on(target).await;
    let r = api
        .post(
            "/api/v1/queues/export/jobs",
            SUBMITTER,
            json!({
                "payload": { "source": "aggregates", "format": "jsonl" },
                "options": {
                    "delay_ms": 3_600_000, "priority": 7, "max_attempts": 9,
                    "backoff": { "type": "fixed", "delay_ms": 250 }
                }
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["state"], "delayed");
    let id = r.body["id"].as_str().unwrap();
    let job = api.queue(QueueName::Export).get(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Delayed);
    assert_eq!(job.priority, 7);
    assert_eq!(job.max_attempts, 9);
    let b = job.backoff.unwrap();
    assert_eq!((b.delay_ms, b.max_delay_ms), (250, 3_600_000));
    assert!(job.run_at - job.created_at >= 3_599_000);

    let at = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let r = api
        .post(
            "/api/v1/queues/export/jobs",
            SUBMITTER,
            json!({
                "payload": { "source": "aggregates", "format": "csv" },
                "options": { "run_at": at }
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["state"], "delayed");
}
}

each_target! {
#[tokio::test]
async fn an_idempotency_key_returns_the_first_job(target) {
    let api = TestApi::on(target).await;
    let send = |key: &'static str| {
        api.req(
            reqwest::Method::POST,
            "/api/v1/queues/cleanup/jobs",
            SUBMITTER,
        )
        .header("Idempotency-Key", key)
        .json(&json!({ "payload": {} }))
        .send()
    };
    let first = Reply::of(send("nightly-2026-11-22").await.unwrap()).await;
    assert_eq!(first.status, 201);
    let again = Reply::of(send("nightly-2026-11-22").await.unwrap()).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.body["created"], false);
    assert!(again.body.get("state").is_none());
    assert_eq!(api.total_jobs().await, 1);
    let other = Reply::of(send("nightly-2026-11-23").await.unwrap()).await;
    assert_eq!(other.status, 201);
    assert_ne!(other.body["id"], first.body["id"]);
    assert_eq!(api.total_jobs().await, 2);

    // Once the first job is deleted, the key has nothing to return: 409, nothing made.
    let first_id = first.body["id"].as_str().unwrap();
    let r = api
        .delete(&format!("/api/v1/queues/cleanup/jobs/{first_id}"), ADMIN)
        .await;
    assert_eq!(r.status, 204);
    let gone = Reply::of(send("nightly-2026-11-22").await.unwrap()).await;
    gone.assert_error(409, "conflict");
    assert_eq!(
        gone.body["error"]["message"],
        format!(
            "this Idempotency-Key was used by job \"{first_id}\", which has since been \
             deleted; nothing was created: use a new key to submit again"
        ),
        "one sentence, with single spaces"
    );
    assert_eq!(api.total_jobs().await, 1);

    let long = "k".repeat(256);
    let r = Reply::of(
        api.req(
            reqwest::Method::POST,
            "/api/v1/queues/cleanup/jobs",
            SUBMITTER,
        )
        .header("Idempotency-Key", long)
        .json(&json!({ "payload": {} }))
        .send()
        .await
        .unwrap(),
    )
    .await;
    r.assert_error(400, "validation_failed");
    assert_eq!(r.field(), "Idempotency-Key");
    assert_eq!(api.total_jobs().await, 1);
}
}

each_target! {
#[tokio::test]
async fn bad_submissions_are_refused_naming_the_field_and_change_nothing(target) {
    let api = TestApi::builder_on(target)
        .env("DROVER_API_BODY_LIMIT", "2048")
        .start()
        .await;
    let cases: Vec<(&str, Value, u16, &str, &str)> = vec![
        (
            "export",
            json!({ "payload": { "source": "aggregates", "format": "xml" } }),
            400,
            "validation_failed",
            "payload.format",
        ),
        (
            "export",
            json!({ "payload": { "source": "aggregates", "format": "csv", "colour": 1 } }),
            400,
            "validation_failed",
            "payload.colour",
        ),
        (
            "cleanup",
            json!({ "payload": { "dry_run": "yes" } }),
            400,
            "validation_failed",
            "payload.dry_run",
        ),
        (
            "analysis",
            json!({ "payload": { "dataset_id": "d1", "chain_type": "sentiment" } }),
            400,
            "validation_failed",
            "payload.columns",
        ),
        (
            "cleanup",
            json!({ "payload": [1, 2] }),
            400,
            "validation_failed",
            "payload",
        ),
        (
            "cleanup",
            json!({ "payload": {}, "extra": true }),
            400,
            "validation_failed",
            "extra",
        ),
        (
            "cleanup",
            json!({ "options": {} }),
            400,
            "validation_failed",
            "payload",
        ),
        (
            "cleanup",
            json!({ "payload": {}, "options": { "priority": 5000 } }),
            400,
            "validation_failed",
            "options.priority",
        ),
        (
            "cleanup",
            json!({ "payload": {}, "options": { "max_attempts": "3" } }),
            400,
            "validation_failed",
            "options.max_attempts",
        ),
        (
            "cleanup",
            json!({ "payload": {}, "options": { "backoff": { "type": "fixed", "delay_ms": 1, "speed": 2 } } }),
            400,
            "validation_failed",
            "options.backoff.speed",
        ),
        ("exports", json!({ "payload": {} }), 404, "not_found", ""),
    ];
    for (queue, body, status, code, field) in cases {
        let r = api
            .post(
                &format!("/api/v1/queues/{queue}/jobs"),
                SUBMITTER,
                body.clone(),
            )
            .await;
        r.assert_error(status, code);
        assert_eq!(r.field(), field, "{body}: {}", r.body);
        assert!(r.header("x-request-id").is_some());
    }

    let raw = |ct: &'static str, body: &'static str| {
        api.req(
            reqwest::Method::POST,
            "/api/v1/queues/cleanup/jobs",
            SUBMITTER,
        )
        .header("content-type", ct)
        .body(body)
        .send()
    };
    Reply::of(raw("application/json", "{\"payload\": ").await.unwrap())
        .await
        .assert_error(400, "bad_request");
    Reply::of(raw("application/json", "").await.unwrap())
        .await
        .assert_error(400, "bad_request");
    Reply::of(raw("text/plain", "{\"payload\": {}}").await.unwrap())
        .await
        .assert_error(415, "unsupported_media_type");

    // Over the limit: with a Content-Length, and chunked.
    let big = json!({ "payload": { "dry_run": true }, "pad": "x".repeat(4096) }).to_string();
    let r = Reply::of(
        api.req(
            reqwest::Method::POST,
            "/api/v1/queues/cleanup/jobs",
            SUBMITTER,
        )
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap(),
    )
    .await;
    r.assert_error(413, "payload_too_large");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.as_bytes().chunks(512).map(|c| Ok(c.to_vec())).collect();
    let r = Reply::of(
        api.req(
            reqwest::Method::POST,
            "/api/v1/queues/cleanup/jobs",
            SUBMITTER,
        )
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap(),
    )
    .await;
    r.assert_error(413, "payload_too_large");

    assert_eq!(
        api.total_jobs().await,
        0,
        "a refused request enqueues nothing"
    );
    // A good one still goes through.
    api.submit("cleanup", json!({}), json!({})).await;
    assert_eq!(api.total_jobs().await, 1);
}
}

each_target! {
#[tokio::test]
async fn jobs_are_listed_page_by_page_with_a_cursor(target) {
    let api = TestApi::on(target).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(api.submit("cleanup", json!({}), json!({})).await);
    }
    let delayed = api
        .submit("cleanup", json!({}), json!({ "delay_ms": 600_000 }))
        .await;

    let mut seen = Vec::new();
    let mut path = "/api/v1/queues/cleanup/jobs?state=waiting&limit=2".to_owned();
    let mut pages = 0;
    loop {
        let r = api.get(&path, SUBMITTER).await;
        assert_eq!(r.status, 200, "{}", r.body);
        pages += 1;
        for j in r.body["jobs"].as_array().unwrap() {
            assert_eq!(j["state"], "waiting");
            seen.push(j["id"].as_str().unwrap().to_owned());
        }
        match r.body["links"]["next"].as_str() {
            Some(next) => {
                assert!(r.body["next_cursor"].is_string());
                path = next.to_owned();
            }
            None => break,
        }
        assert!(pages < 10, "the cursor loops");
    }
    assert_eq!(seen, ids, "every waiting job once, in run (FIFO) order");
    assert!(pages >= 3);

    let r = api
        .get("/api/v1/queues/cleanup/jobs?state=delayed", SUBMITTER)
        .await;
    let jobs = r.body["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["id"], delayed.as_str());
    assert!(r.body.get("next_cursor").is_none());

    // `waiting` is the default.
    let r = api.get("/api/v1/queues/cleanup/jobs", SUBMITTER).await;
    assert_eq!(r.body["jobs"].as_array().unwrap().len(), 5);

    for (query, field) in [
        ("state=stuck", "state"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("cursor=nonsense", "cursor"),
    ] {
        let r = api
            .get(&format!("/api/v1/queues/cleanup/jobs?{query}"), SUBMITTER)
            .await;
        r.assert_error(400, "validation_failed");
        assert_eq!(r.field(), field, "{query}: {}", r.body);
    }
    api.get("/api/v1/queues/nope/jobs", SUBMITTER)
        .await
        .assert_error(404, "not_found");
}
}

each_target! {
#[tokio::test]
async fn unknown_jobs_are_404(target) {
    let api = TestApi::on(target).await;
    let id = api.submit("cleanup", json!({}), json!({})).await;
    for path in [
        "/api/v1/queues/cleanup/jobs/01JD4X8Q7W3K9N2M5P6R8T0V1Y".to_owned(),
        format!("/api/v1/queues/export/jobs/{id}"),
        "/api/v1/queues/cleanup/jobs/..%2F..%2Fetc".to_owned(),
        "/api/v1/jobs/01JD4X8Q7W3K9N2M5P6R8T0V1Y".to_owned(),
        format!("/api/v1/queues/exports/jobs/{id}"),
    ] {
        api.get(&path, SUBMITTER)
            .await
            .assert_error(404, "not_found");
    }
}
}

each_target! {
#[tokio::test]
async fn archived_jobs_are_read_from_the_database(target) {
    use drover_entities::job_history;
    use sea_orm::{ActiveModelTrait, Set};

    for db in drover_tests::TestDb::all().await {
        let engine = db.engine();
        let api = TestApi::builder_on(target).db(db).start().await;
        let t = chrono::Utc::now() - chrono::Duration::days(3);
        let row = job_history::ActiveModel {
            id: Set("01JARCHIVED0000000000000000".to_owned()),
            queue: Set("export".to_owned()),
            state: Set("completed".to_owned()),
            payload: Set(r#"{"source":"aggregates","format":"csv"}"#.to_owned()),
            result: Set(Some(r#"{"rows":3}"#.to_owned())),
            errors: Set(r#"[{"attempt":1,"error":"busy","started_at":1,"at":2}]"#.to_owned()),
            failed_reason: Set(None),
            attempts: Set(2),
            max_attempts: Set(3),
            priority: Set(0),
            request_id: Set(Some("req-old".to_owned())),
            created_at: Set(t),
            started_at: Set(Some(t)),
            finished_at: Set(Some(t)),
            archived_at: Set(t + chrono::Duration::days(1)),
            ..Default::default()
        };
        row.insert(&api.dbc).await.unwrap();

        for path in [
            "/api/v1/jobs/01JARCHIVED0000000000000000",
            "/api/v1/queues/export/jobs/01JARCHIVED0000000000000000",
        ] {
            // No key submitted this row: an admin reads it (tenants.rs: submitters).
            let r = api.get(path, ADMIN).await;
            assert_eq!(r.status, 200, "{engine:?} {path}: {}", r.body);
            assert_eq!(r.body["state"], "completed");
            assert_eq!(r.body["queue"], "export");
            assert_eq!(r.body["result"], json!({ "rows": 3 }));
            assert_eq!(r.body["errors"][0]["error"], "busy");
            assert_eq!(r.body["request_id"], "req-old");
            assert!(r.body["archived_at"].is_string());
        }
        api.get(
            "/api/v1/queues/cleanup/jobs/01JARCHIVED0000000000000000",
            SUBMITTER,
        )
        .await
        .assert_error(404, "not_found");
    }
}
}

#[tokio::test]
async fn a_submission_too_few_replicas_confirmed_is_a_503_not_a_success() {
    // The machine's Redis has no replica, so `WAIT 1` is never met.
    let api = TestApi::builder()
        .env("DROVER_REDIS_WAIT_REPLICAS", "1")
        .env("DROVER_REDIS_WAIT_TIMEOUT_MS", "50")
        .start()
        .await;
    let r = Reply::of(
        api.req(
            reqwest::Method::POST,
            "/api/v1/queues/cleanup/jobs",
            SUBMITTER,
        )
        .header("Idempotency-Key", "wait-1")
        .json(&json!({ "payload": { "dry_run": true } }))
        .send()
        .await
        .unwrap(),
    )
    .await;
    r.assert_error(503, "unavailable");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("0 of 1 replicas"), "{message}");
    assert!(
        r.header("retry-after").is_some(),
        "a 503 says when to retry"
    );
}
