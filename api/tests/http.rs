#![allow(clippy::unwrap_used)] // Tests fail by panicking.
//! What every route shares: the error envelope, request ids, health, readiness, the
//! served OpenAPI document, and 503s (not hangs) while Redis is down.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_envelope_with_a_request_id() {
    let api = TestApi::start().await;
    let r = api.get("/api/v1/nothing-here", ADMIN).await;
    r.assert_error(404, "not_found");
    assert!(r.header("x-request-id").is_some());
    let r = Reply::of(
        api.req(reqwest::Method::PUT, "/api/v1/queues/cleanup/pause", ADMIN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(405, "method_not_allowed");
    assert_eq!(
        r.header("allow"),
        Some("POST"),
        "RFC 9110: say what is allowed"
    );
    let r = Reply::of(
        api.req(
            reqwest::Method::PATCH,
            "/api/v1/queues/cleanup/jobs/x",
            ADMIN,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("DELETE, GET, HEAD"));
    // A queue's typed submit path also lists its jobs, like `/queues/{queue}/jobs`.
    let r = Reply::of(
        api.req(reqwest::Method::DELETE, "/api/v1/queues/export/jobs", ADMIN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));
    // A request id that is not sane is replaced.
    let r = Reply::of(
        api.client
            .get(api.url("/health"))
            .header("x-request-id", "has spaces in it")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let id = r.header("x-request-id").unwrap();
    assert_ne!(id, "has spaces in it");
    assert_eq!(id.len(), 26);
}

#[tokio::test]
async fn health_ready_metrics_and_docs_need_no_key() {
    let api = TestApi::start().await;
    let h = api.get("/health", "").await;
    assert_eq!(h.status, 200);
    assert_eq!(h.body["status"], "ok");
    assert_eq!(
        h.body["services"],
        json!({ "redis": "up", "database": "up" })
    );
    let r = api.get("/ready", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "ready");

    api.submit("cleanup", json!({}), json!({})).await;
    let m = api.client.get(api.url("/metrics")).send().await.unwrap();
    let text = m.text().await.unwrap();
    assert!(
        text.contains("drover_http_requests_total") && text.contains("route=\"add_cleanup_job\""),
        "{text}"
    );
    // The queues' state, read from Redis at scrape time: the job just submitted waits.
    assert!(
        text.contains("drover_queue_jobs{queue=\"cleanup\",state=\"waiting\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("drover_queue_paused{queue=\"cleanup\"} 0"),
        "{text}"
    );
    assert!(text.contains("drover_redis_up 1"), "{text}");

    let spec = api.get("/openapi.json", "").await;
    assert_eq!(spec.status, 200);
    let served: serde_json::Value = spec.body;
    let built: serde_json::Value = serde_json::from_str(&drover_api::openapi::spec_json(
        &drover_api::openapi::service(),
    ))
    .unwrap();
    assert_eq!(served, built);
    let docs = api.client.get(api.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(html.contains("SwaggerUIBundle") && html.contains("\"add_export_job\""));
    assert!(
        html.contains("\"additionalProperties\": false"),
        "the docs show the served document"
    );
}

#[tokio::test]
async fn redis_down_answers_503_quickly_and_recovers() {
    use drover_entities::job_history;
    use sea_orm::{ActiveModelTrait, Set};

    let mut redis = drover_tests::TestRedis::start();
    let api = TestApi::builder().redis(redis.url()).start().await;
    let id = api.submit("cleanup", json!({}), json!({})).await;
    let t = chrono::Utc::now();
    job_history::ActiveModel {
        id: Set("01JARCHIVED0000000000000001".to_owned()),
        queue: Set("cleanup".to_owned()),
        state: Set("failed".to_owned()),
        payload: Set("{}".to_owned()),
        result: Set(None),
        errors: Set("[]".to_owned()),
        failed_reason: Set(Some("permanent".to_owned())),
        attempts: Set(1),
        max_attempts: Set(1),
        priority: Set(0),
        request_id: Set(None),
        created_at: Set(t),
        started_at: Set(None),
        finished_at: Set(Some(t)),
        archived_at: Set(t),
        ..Default::default()
    }
    .insert(&api.dbc)
    .await
    .unwrap();

    redis.kill();
    for _ in 0..2 {
        let started = Instant::now();
        let r = api
            .post(
                "/api/v1/queues/cleanup/jobs",
                SUBMITTER,
                json!({ "payload": {} }),
            )
            .await;
        r.assert_error(503, "unavailable");
        assert_eq!(r.header("retry-after"), Some("1"));
        // Not a hang: well within the client's 20 s (the Redis timeout is 2 s).
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        api.get(&format!("/api/v1/queues/cleanup/jobs/{id}"), SUBMITTER)
            .await
            .assert_error(503, "unavailable");
        api.get(&format!("/api/v1/jobs/{id}"), SUBMITTER)
            .await
            .assert_error(503, "unavailable");
        api.get("/api/v1/queues/metrics", ADMIN)
            .await
            .assert_error(503, "unavailable");
    }
    // The archive is in the database: still readable.
    let r = api
        .get("/api/v1/jobs/01JARCHIVED0000000000000001", ADMIN)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["state"], "failed");

    let ready = api.get("/ready", "").await;
    assert_eq!(ready.status, 503);
    assert_eq!(
        ready.body["services"],
        json!({ "redis": "down", "database": "up" })
    );
    let health = api.get("/health", "").await;
    assert_eq!(health.status, 200, "alive, if not ready");
    assert_eq!(health.body["services"]["redis"], "down");

    redis.restart();
    drover_tests::eventually_async(T, "submissions to work again", || async {
        (api.submit_with(SUBMITTER).await == 201).then_some(())
    })
    .await;
    assert_eq!(api.get("/ready", "").await.status, 200);
}

#[tokio::test]
async fn database_down_answers_503() {
    use sea_orm::{ConnectionTrait, Statement};

    // Only PostgreSQL can be taken away from under a running API.
    let Some(db) = drover_tests::TestDb::postgres().await else {
        return;
    };
    let api = TestApi::builder().db(db).start().await;
    let row = api
        .dbc
        .query_one_raw(Statement::from_string(
            api.dbc.get_database_backend(),
            "SELECT current_database() AS name",
        ))
        .await
        .unwrap()
        .unwrap();
    let name: String = row.try_get("", "name").unwrap();
    let server = sea_orm::Database::connect(std::env::var("TEST_DATABASE_URL").unwrap())
        .await
        .unwrap();
    server
        .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();

    // A key the cache has not seen must be looked up: the database is gone.
    let started = Instant::now();
    let r = api
        .get("/api/v1/queues", "a-key-never-seen-0123456789")
        .await;
    r.assert_error(503, "unavailable");
    assert!(started.elapsed() < Duration::from_secs(10));
    let ready = api.get("/ready", "").await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.body["services"]["database"], "down");
}
