#![allow(clippy::unwrap_used)] // Tests fail by panicking.
//! Search and bulk actions over HTTP: what they find and do, and how they refuse what
//! they cannot act on (400 outside the schema, 422 for a rule over several fields),
//! changing nothing.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn search_finds_by_id_and_payload_word_and_refuses_what_it_cannot_search_by() {
    let api = TestApi::start().await;
    let id = api
        .submit(
            "export",
            json!({ "source": "job_history", "format": "csv" }),
            json!({}),
        )
        .await;
    let path = "/api/v1/queues/export/search";

    let r = api.get(&format!("{path}?id={id}"), ADMIN).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["jobs"][0]["id"], id.as_str());
    let r = api.get(&format!("{path}?q=job_history"), ADMIN).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == id.as_str()),
        "{}",
        r.body
    );

    // Nothing to search by, or an empty time range: the schema allows both, the rule
    // over the parameters does not.
    let r = api.get(&format!("{path}?limit=50"), ADMIN).await;
    r.assert_error(422, "unprocessable");
    assert_eq!(r.field(), "q");
    let r = api
        .get(
            &format!("{path}?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"),
            ADMIN,
        )
        .await;
    r.assert_error(422, "unprocessable");
    assert_eq!(r.field(), "from");
    // A cursor this API never hands out is outside the schema.
    let r = api
        .get(&format!("{path}?q=job_history&cursor=r9%3Axyz"), ADMIN)
        .await;
    r.assert_error(400, "validation_failed");
    assert_eq!(r.field(), "cursor");
}

#[tokio::test]
async fn bulk_refuses_empty_and_malformed_id_lists_and_changes_nothing() {
    let api = TestApi::start().await;
    let id = api.submit("cleanup", json!({}), json!({})).await;
    let path = "/api/v1/queues/cleanup/jobs/bulk";
    for (ids, field) in [(json!([]), "ids"), (json!([""]), "ids")] {
        let r = api
            .post(path, ADMIN, json!({ "action": "delete", "ids": ids }))
            .await;
        r.assert_error(400, "validation_failed");
        assert!(r.field().starts_with(field), "{}", r.body);
    }
    assert_eq!(
        api.total_jobs().await,
        1,
        "a refused bulk action deleted a job"
    );

    let r = api
        .post(path, ADMIN, json!({ "action": "delete", "ids": [id] }))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["done"], 1, "{}", r.body);
    assert_eq!(api.total_jobs().await, 0);
}
