#![allow(clippy::unwrap_used)] // Tests fail by panicking.
//! Changing a queue's flow limits over HTTP (`PATCH /api/v1/queues/{queue}`): admins
//! only, every bad limit a 400 that says why and changes nothing, and the limits and
//! back-pressure visible in the queue's metrics.

mod common;

use common::*;
use drover_jobs::QueueName;
use serde_json::{Value, json};

async fn patch(api: &TestApi, path: &str, key: &str, body: Value) -> Reply {
    Reply::of(
        api.req(reqwest::Method::PATCH, path, key)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

const PATH: &str = "/api/v1/queues/cleanup";

#[tokio::test]
async fn bad_limits_get_a_400_that_says_why_and_change_nothing() {
    let api = TestApi::start().await;
    let ok = patch(
        &api,
        PATH,
        ADMIN,
        json!({ "rate_limit": { "limit": 3, "per_ms": 1000, "burst": 5 }, "max_active": 2 }),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let before = api
        .queue(QueueName::Cleanup)
        .flow_status()
        .await
        .unwrap()
        .limits;

    for (body, field, says) in [
        (
            json!({ "rate_limit": { "limit": 0, "per_ms": 1000 } }),
            "rate_limit.limit",
            "at least 1",
        ),
        (
            json!({ "rate_limit": { "limit": -5, "per_ms": 1000 } }),
            "rate_limit.limit",
            "at least 1",
        ),
        (
            json!({ "rate_limit": { "limit": 5, "per_ms": 1000, "burst": 0 } }),
            "rate_limit.burst",
            "at least 1",
        ),
        (
            json!({ "rate_limit": { "limit": 5, "per_ms": 0 } }),
            "rate_limit.per_ms",
            "between 1 ms",
        ),
        (
            json!({ "rate_limit": { "limit": 5, "per_ms": -1000 } }),
            "rate_limit.per_ms",
            "between 1 ms",
        ),
        (
            json!({ "rate_limit": { "limit": 5, "per_ms": 31_536_000_000_i64 } }),
            "rate_limit.per_ms",
            "one day",
        ),
        (json!({ "max_active": 0 }), "max_active", "at least 1"),
        (json!({ "max_active": -2 }), "max_active", "at least 1"),
    ] {
        let r = patch(&api, PATH, ADMIN, body.clone()).await;
        r.assert_error(400, "validation_failed");
        assert_eq!(r.field(), field, "{body}: {}", r.body);
        let msg = r.body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(says), "{body}: {msg}");
    }
    // An empty change fits the schema but changes nothing: a 422 that says so.
    let r = patch(&api, PATH, ADMIN, json!({})).await;
    r.assert_error(422, "unprocessable");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing to change"),
        "{}",
        r.body
    );
    // Wrong types and unknown fields are 400s too, naming the field.
    for body in [
        json!({ "rate_limit": "fast" }),
        json!({ "max_active": 2, "concurrency": 4 }),
    ] {
        let r = patch(&api, PATH, ADMIN, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
    }
    let after = api
        .queue(QueueName::Cleanup)
        .flow_status()
        .await
        .unwrap()
        .limits;
    assert_eq!(before, after, "a refused change changes nothing");

    // Submitters may not change limits; unknown queues are 404.
    patch(&api, PATH, SUBMITTER, json!({ "max_active": 5 }))
        .await
        .assert_error(403, "forbidden");
    let r = patch(
        &api,
        "/api/v1/queues/mail",
        ADMIN,
        json!({ "max_active": 5 }),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        api.queue(QueueName::Cleanup)
            .flow_status()
            .await
            .unwrap()
            .limits,
        after
    );
}

#[tokio::test]
async fn limits_and_back_pressure_show_in_the_queue_metrics() {
    let api = TestApi::start().await;
    let m = api.get(&format!("{PATH}/metrics"), ADMIN).await;
    assert_eq!(m.status, 200, "{}", m.body);
    assert_eq!(m.body["flow"]["set_by"], "nobody");
    assert!(m.body["flow"].get("rate_limit").is_none(), "{}", m.body);
    assert_eq!(m.body["flow"]["expected_start_delay_ms"], 0);

    // One token per minute, and it is spent on nothing yet: a full bucket of 1.
    let r = patch(
        &api,
        PATH,
        ADMIN,
        json!({ "rate_limit": { "limit": 1, "per_ms": 60000, "burst": 1 } }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["flow"]["rate_limit"]["limit"], 1);
    assert_eq!(r.body["flow"]["set_by"], "api");
    assert_eq!(r.body["flow"]["tokens_available"], 1);

    // Three waiting jobs (no worker runs): one can start on the token in the bucket,
    // two wait for tokens still to come, and a new job would wait three minutes less
    // what has refilled since.
    for _ in 0..3 {
        api.submit("cleanup", ok_payload(), json!({})).await;
    }
    let m = api.get(&format!("{PATH}/metrics"), ADMIN).await;
    let f = &m.body["flow"];
    assert_eq!(f["tokens_available"], 1, "{f}");
    assert_eq!(f["waiting_for_token"], 2, "{f}");
    let delay = f["expected_start_delay_ms"].as_u64().unwrap();
    assert!((170_000..=180_000).contains(&delay), "{f}");
    assert!(
        (f["rate_per_second"].as_f64().unwrap() - 1.0 / 60.0).abs() < 1e-9,
        "{f}"
    );

    // null removes a limit; a field left out stays.
    let r = patch(&api, PATH, ADMIN, json!({ "max_active": 4 })).await;
    assert_eq!(r.body["flow"]["max_active"], 4, "{}", r.body);
    assert_eq!(r.body["flow"]["rate_limit"]["per_ms"], 60000, "{}", r.body);
    let r = patch(&api, PATH, ADMIN, json!({ "rate_limit": null })).await;
    assert!(r.body["flow"].get("rate_limit").is_none(), "{}", r.body);
    assert_eq!(r.body["flow"]["max_active"], 4, "{}", r.body);
    assert_eq!(r.body["flow"]["expected_start_delay_ms"], 0, "{}", r.body);
}
