#![allow(clippy::unwrap_used)] // Tests fail by panicking.
//! A flood of distinct bad keys reaches the database a bounded number of times and
//! does not push valid keys out of the cache. Alone in its test binary, because it
//! reads a process-wide counter (`drover_api_key_lookups_total`).

mod common;

use common::*;
use futures::StreamExt as _;

async fn lookups(api: &TestApi) -> u64 {
    let text = drover_tests::scrape::text(&api.client, &api.url("/metrics")).await;
    // Absent until the first lookup.
    drover_tests::scrape::unlabelled(&text, "drover_api_key_lookups_total").map_or(0, |v| v as u64)
}

#[tokio::test]
async fn ten_thousand_bad_keys_reach_the_database_a_bounded_number_of_times() {
    const BAD: usize = 10_000;
    const BUDGET: u64 = 20;
    let api = TestApi::builder()
        .env("DROVER_API_AUTH_FAILURES", &BUDGET.to_string())
        .env("DROVER_API_KEY_CACHE_MS", "60000")
        .start()
        .await;
    for key in [SUBMITTER, ADMIN] {
        assert_eq!(
            api.get("/api/v1/queues/cleanup/jobs", key).await.status,
            200
        );
    }
    let before = lookups(&api).await;
    let statuses: Vec<u16> = futures::stream::iter(0..BAD)
        .map(|i| {
            let api = &api;
            async move {
                // Valid requests go on during the flood.
                let key = if i % 500 == 0 {
                    SUBMITTER.to_owned()
                } else {
                    format!("flood-{i:030}")
                };
                let r = api.get("/api/v1/queues/cleanup/jobs", &key).await;
                if key == SUBMITTER {
                    assert_eq!(r.status, 200, "a valid key during the flood: {}", r.body);
                } else if r.status != 401 {
                    r.assert_error(429, "rate_limited");
                }
                r.status
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let refused = statuses.iter().filter(|s| **s == 429).count();
    let during = lookups(&api).await - before;
    // The budget, plus what refilled while the flood ran (a token every 3 s).
    assert!(
        during <= BUDGET + 10,
        "{during} database lookups for {BAD} bad keys"
    );
    assert!(refused > BAD - 100, "{refused} of {BAD} refused with 429");
    // Both valid keys are still cached: using them asks the database nothing.
    for key in [SUBMITTER, ADMIN] {
        assert_eq!(
            api.get("/api/v1/queues/cleanup/jobs", key).await.status,
            200
        );
    }
    assert_eq!(lookups(&api).await - before, during);
}
