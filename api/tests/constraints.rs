#![allow(clippy::unwrap_used)] // Tests fail by panicking.
//! The spec says what the server accepts: a value the server refuses is outside the
//! schema, and the refusal is a 400 naming the field.

mod common;

use common::*;
use serde_json::{Value, json};

fn spec() -> Value {
    serde_json::from_str(&drover_api::openapi::spec_json(
        &drover_api::openapi::service(),
    ))
    .unwrap()
}

fn query_param<'a>(spec: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
    spec["paths"][path][method]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name && p["in"] == "query")
        .unwrap_or_else(|| panic!("no query parameter {name} on {method} {path}"))
}

#[tokio::test]
async fn empty_sse_filters_and_test_event_fields_are_outside_the_schema_and_refused() {
    let spec = spec();
    // Each filter says exactly what it takes: an anchored pattern (which the server
    // enforces, below), naming every queue where it takes queues.
    let anchored = |p: &serde_json::Value| {
        let p = p.as_str().unwrap_or_default();
        p.starts_with('^') && p.ends_with('$')
    };
    for name in ["queue", "job_id", "type"] {
        let p = query_param(&spec, "/api/v1/sse/events", "get", name);
        assert!(anchored(&p["schema"]["pattern"]), "{name}: {p}");
    }
    let test_event = &spec["components"]["schemas"]["TestEventRequest"]["properties"];
    for name in ["queue", "type"] {
        assert!(
            anchored(&test_event[name]["pattern"]),
            "{name}: {test_event}"
        );
    }
    for q in ["export", "analysis", "aggregation", "cleanup"] {
        assert!(test_event["queue"]["pattern"].as_str().unwrap().contains(q));
    }

    let api = TestApi::start().await;
    for name in ["queue", "job_id", "type"] {
        let r = api
            .get(&format!("/api/v1/sse/events?{name}="), SUBMITTER)
            .await;
        r.assert_error(400, "validation_failed");
        assert_eq!(r.field(), name, "{}", r.body);
    }
    let r = api
        .post("/api/v1/sse/test-event", ADMIN, json!({ "queue": "" }))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body["error"]["code"].is_string(), "{}", r.body);
}
