#![allow(clippy::unwrap_used)] // Tests fail by panicking.
//! `/metrics`: queue gauges read from Redis at most once per cache period, and an
//! optional listener of its own. One test per concern, run in order in one test,
//! because the gauges are process-wide.

mod common;

use common::*;
use serde_json::json;

const WAITING_0: &str = "drover_queue_jobs{queue=\"cleanup\",state=\"waiting\"} 0";
const WAITING_1: &str = "drover_queue_jobs{queue=\"cleanup\",state=\"waiting\"} 1";

async fn scrape(client: &reqwest::Client, url: &str) -> (u16, String) {
    let r = client.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn queue_gauges_are_cached_and_metrics_can_have_their_own_listener() {
    // A long cache: the second scrape must not read Redis again.
    let api = TestApi::builder()
        .env("DROVER_METRICS_QUEUE_CACHE_MS", "600000")
        .start()
        .await;
    let (status, text) = scrape(&api.client, &api.url("/metrics")).await;
    assert_eq!(status, 200);
    assert!(text.contains(WAITING_0), "{text}");
    api.submit("cleanup", json!({}), json!({})).await;
    let (_, text) = scrape(&api.client, &api.url("/metrics")).await;
    assert!(
        text.contains(WAITING_0),
        "the gauges were read again within the cache period: {text}"
    );
    drop(api);

    // No cache: every scrape reads.
    let api = TestApi::builder()
        .env("DROVER_METRICS_QUEUE_CACHE_MS", "0")
        .start()
        .await;
    let (_, text) = scrape(&api.client, &api.url("/metrics")).await;
    assert!(text.contains(WAITING_0), "{text}");
    api.submit("cleanup", json!({}), json!({})).await;
    let (_, text) = scrape(&api.client, &api.url("/metrics")).await;
    assert!(text.contains(WAITING_1), "{text}");
    drop(api);

    // `/metrics` on a listener of its own, and not on the API's.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api = TestApi::builder()
        .env("DROVER_METRICS_ADDR", &format!("127.0.0.1:{port}"))
        .start()
        .await;
    api.get("/metrics", "").await.assert_error(404, "not_found");
    let (status, text) = scrape(&api.client, &format!("http://127.0.0.1:{port}/metrics")).await;
    assert_eq!(status, 200);
    assert!(text.contains("drover_http_requests_total"), "{text}");
    assert!(text.contains("drover_redis_up 1"), "{text}");
    assert_eq!(api.get("/health", "").await.status, 200);
    api.stop().await;
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .is_err(),
        "the metrics listener stops with the API"
    );
}
