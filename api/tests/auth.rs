#![allow(clippy::unwrap_used)] // Tests fail by panicking.
//! API keys, roles and rate limits, on every database engine the machine offers.

mod common;

use std::time::Duration;

use common::*;
use drover_api::auth::Role;
use drover_api::auth::keys;
use drover_tests::TestDb;
use serde_json::json;

#[tokio::test]
async fn requests_without_a_valid_key_are_401_and_change_nothing() {
    for db in TestDb::all().await {
        let api = TestApi::builder().db(db).start().await;
        let body = json!({ "payload": {} });
        let no_key = Reply::of(
            api.client
                .post(api.url("/api/v1/queues/cleanup/jobs"))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        no_key.assert_error(401, "unauthorized");
        assert_eq!(no_key.header("www-authenticate"), Some("Bearer"));
        assert!(no_key.header("x-request-id").is_some());

        let basic = Reply::of(
            api.client
                .post(api.url("/api/v1/queues/cleanup/jobs"))
                .basic_auth("admin", Some(ADMIN))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        basic.assert_error(401, "unauthorized");

        let wrong = api
            .post(
                "/api/v1/queues/cleanup/jobs",
                "not-a-key-0123456789abcdef",
                body.clone(),
            )
            .await;
        wrong.assert_error(401, "unauthorized");
        assert_eq!(wrong.header("www-authenticate"), Some("Bearer"));
        // Even a bad body answers 401 first: nothing is said to strangers.
        api.post(
            "/api/v1/queues/export/jobs",
            "wrong-key-0123456789abcdef",
            json!(1),
        )
        .await
        .assert_error(401, "unauthorized");
        for path in [
            "/api/v1/jobs/01JD4X8Q7W3K9N2M5P6R8T0V1Y",
            "/api/v1/queues",
            "/api/v1/workers",
        ] {
            let r = Reply::of(api.client.get(api.url(path)).send().await.unwrap()).await;
            r.assert_error(401, "unauthorized");
        }
        assert_eq!(api.total_jobs().await, 0);
    }
}

#[tokio::test]
async fn submitters_submit_and_read_admins_do_everything() {
    let api = TestApi::start().await;
    let id = api.submit("cleanup", json!({}), json!({})).await;
    for key in [SUBMITTER, ADMIN] {
        assert_eq!(
            api.get(&format!("/api/v1/jobs/{id}"), key).await.status,
            200
        );
        assert_eq!(
            api.get("/api/v1/queues/cleanup/jobs", key).await.status,
            200
        );
    }
    let r = api
        .post(
            "/api/v1/queues/cleanup/jobs",
            ADMIN,
            json!({ "payload": {} }),
        )
        .await;
    assert_eq!(r.status, 201);

    let admin_only: [(reqwest::Method, String); 10] = [
        (reqwest::Method::GET, "/api/v1/queues".into()),
        (reqwest::Method::GET, "/api/v1/queues/metrics".into()),
        (
            reqwest::Method::GET,
            "/api/v1/queues/cleanup/metrics".into(),
        ),
        (reqwest::Method::GET, "/api/v1/workers".into()),
        (reqwest::Method::POST, "/api/v1/queues/cleanup/pause".into()),
        (
            reqwest::Method::POST,
            "/api/v1/queues/cleanup/resume".into(),
        ),
        (reqwest::Method::POST, "/api/v1/queues/cleanup/clean".into()),
        (
            reqwest::Method::DELETE,
            format!("/api/v1/queues/cleanup/jobs/{id}"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/queues/cleanup/jobs/{id}/retry"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/queues/cleanup/jobs/{id}/promote"),
        ),
    ];
    for (method, path) in admin_only {
        let r = Reply::of(
            api.req(method.clone(), &path, SUBMITTER)
                .json(&json!({ "state": "completed", "grace_ms": 0 }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        r.assert_error(403, "forbidden");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("admin"),
            "{}",
            r.body
        );
        let r = Reply::of(
            api.req(method.clone(), &path, ADMIN)
                .json(&json!({ "state": "completed", "grace_ms": 0 }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        // Allowed (the job may be gone by then: a 404 or 409 is the handler's answer).
        assert!(
            r.status < 300 || r.status == 404 || r.status == 409,
            "{method} {path}: {} {}",
            r.status,
            r.body
        );
    }
}

#[tokio::test]
async fn cli_keys_work_and_a_revoked_key_stops_within_the_cache_ttl() {
    for db in TestDb::all().await {
        let api = TestApi::builder()
            .db(db)
            .env("DROVER_API_KEY_CACHE_MS", "300")
            .start()
            .await;
        let (row, key) =
            keys::create_key(&api.dbc, "ci pipeline", Role::Submitter, keys::source::CLI)
                .await
                .unwrap();
        assert!(key.starts_with("drv_"));
        assert_eq!(row.key_hash, keys::hash_key(&key));
        assert!(key.starts_with(&row.key_prefix));
        assert_ne!(row.key_hash, key, "the key itself is not stored");

        // A new key works at once (it was never looked up).
        assert_eq!(api.submit_with(&key).await, 201);
        drover_tests::eventually_async(T, "last_used_at to be recorded", || async {
            keys::list_keys(&api.dbc)
                .await
                .unwrap()
                .into_iter()
                .find(|k| k.id == row.id)
                .and_then(|k| k.last_used_at)
        })
        .await;

        let listed = keys::list_keys(&api.dbc).await.unwrap();
        assert_eq!(listed.len(), 3, "two from DROVER_API_KEYS, one made here");
        assert_eq!(listed.iter().filter(|k| k.source == "env").count(), 2);

        let revoked = keys::revoke_key(&api.dbc, &row.key_prefix).await.unwrap();
        assert!(revoked.revoked_at.is_some());
        assert!(matches!(
            keys::revoke_key(&api.dbc, &row.id.to_string()).await,
            Err(keys::KeyError::AlreadyRevoked(_))
        ));
        assert!(matches!(
            keys::revoke_key(&api.dbc, "999999").await,
            Err(keys::KeyError::NotFound(_))
        ));
        let started = std::time::Instant::now();
        drover_tests::eventually_async(T, "the revoked key to be refused", || async {
            (api.submit_with(&key).await == 401).then_some(())
        })
        .await;
        // The cache trusts an answer for 300 ms: the bound, plus scheduling slack.
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            api.submit_with(SUBMITTER).await,
            201,
            "other keys still work"
        );
    }
}

#[tokio::test]
async fn env_keys_follow_drover_api_keys_across_restarts() {
    for db in TestDb::all().await {
        let api = TestApi::builder().db(db).start().await;
        assert_eq!(api.submit_with(SUBMITTER).await, 201);
        let db = api.stop().await;

        // The submitter key left DROVER_API_KEYS: it is revoked; the admin became a
        // submitter.
        let api = TestApi::builder()
            .db(db)
            .env("DROVER_API_KEYS", &format!("submitter:{ADMIN}"))
            .start()
            .await;
        assert_eq!(api.submit_with(SUBMITTER).await, 401);
        assert_eq!(api.submit_with(ADMIN).await, 201);
        api.get("/api/v1/queues", ADMIN)
            .await
            .assert_error(403, "forbidden");
        let env_keys: Vec<_> = keys::list_keys(&api.dbc)
            .await
            .unwrap()
            .into_iter()
            .filter(|k| k.source == "env")
            .collect();
        assert_eq!(env_keys.len(), 2);
        assert_eq!(
            env_keys.iter().filter(|k| k.revoked_at.is_none()).count(),
            1
        );
        let db = api.stop().await;

        // A key revoked by hand stays revoked even if the variable lists it again.
        let api = TestApi::builder()
            .db(db)
            .env(
                "DROVER_API_KEYS",
                &format!("admin:{ADMIN},submitter:{SUBMITTER}"),
            )
            .start()
            .await;
        assert_eq!(api.submit_with(SUBMITTER).await, 401);
        assert_eq!(api.get("/api/v1/queues", ADMIN).await.status, 200);
    }
}

#[tokio::test]
async fn prod_refuses_to_start_without_a_key() {
    let e = TestApi::builder()
        .env("DROVER_ENV", "prod")
        .env("DROVER_API_KEYS", "")
        .try_start()
        .await
        .err()
        .expect("the API refuses to start");
    assert!(e.contains("no API key"), "{e}");
    assert!(e.contains("DROVER_API_KEYS"), "{e}");
    // With a key it starts.
    let api = TestApi::builder().env("DROVER_ENV", "prod").start().await;
    assert_eq!(api.submit_with(SUBMITTER).await, 201);
}

#[tokio::test]
async fn an_empty_bucket_answers_429_with_retry_after_and_changes_nothing() {
    let api = TestApi::builder()
        .env("DROVER_API_RATE_SUBMITTER", "1")
        .env("DROVER_API_BURST_SUBMITTER", "3")
        .start()
        .await;
    for _ in 0..3 {
        assert_eq!(api.submit_with(SUBMITTER).await, 201);
    }
    let r = api
        .post(
            "/api/v1/queues/cleanup/jobs",
            SUBMITTER,
            json!({ "payload": {} }),
        )
        .await;
    r.assert_error(429, "rate_limited");
    let retry_after: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(
        api.total_jobs().await,
        3,
        "the limited request enqueued nothing"
    );
    // Buckets are per key: the admin's is full.
    assert_eq!(api.submit_with(ADMIN).await, 201);
    // The bucket is in Redis, where every API process sees it.
    let bucket = format!("{}:ratelimit:", api.namespace);
    let n: Vec<String> = api
        .redis
        .query(redis::cmd("KEYS").arg(format!("{bucket}*")))
        .await
        .unwrap();
    assert_eq!(n.len(), 2, "{n:?}");
    // A token comes back after a second.
    drover_tests::eventually_async(T, "a token to come back", || async {
        (api.submit_with(SUBMITTER).await == 201).then_some(())
    })
    .await;
}

#[tokio::test]
async fn rate_limits_can_be_turned_off() {
    let api = TestApi::builder()
        .env("DROVER_API_RATE_SUBMITTER", "0")
        .env("DROVER_API_BURST_SUBMITTER", "1")
        .start()
        .await;
    for _ in 0..5 {
        assert_eq!(api.submit_with(SUBMITTER).await, 201);
    }
}
