#![allow(clippy::unwrap_used)] // Tests fail by panicking.
//! `/metrics` of an API on a Redis Cluster: the Redis gauges are read from every node.
//! A binary of its own, because the gauges are process-wide: no other test of this
//! process talks to one server and could set them.

mod common;

use common::*;
use drover_tests::TestTarget;

#[tokio::test]
async fn the_redis_gauges_are_read_from_a_cluster() {
    if TestTarget::Cluster.url().is_none() {
        return;
    }
    let api = TestApi::on(TestTarget::Cluster).await;
    let text = api
        .client
        .get(api.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("drover_redis_up 1"), "{text}");
    let used = drover_tests::scrape::unlabelled(&text, "drover_redis_used_memory_bytes");
    assert!(used.is_some_and(|v| v > 0.0), "{used:?} in {text}");
    assert!(
        drover_tests::scrape::unlabelled(&text, "drover_redis_maxmemory_bytes").is_some(),
        "{text}"
    );
}
