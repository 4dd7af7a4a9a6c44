//! The schedules API: each endpoint and each of its errors, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

mod common;

use common::{ADMIN, Reply, SUBMITTER, TestApi};
use drover_jobs::QueueName;
use drover_tests::TestDb;
use serde_json::{Value, json};

fn nightly() -> Value {
    json!({
        "name": "nightly-rollup",
        "cron": "30 2 * * *",
        "timezone": "Europe/Berlin",
        "queue": "aggregation",
        "payload": {"granularity": "day", "bucket_start": "{{previous_day_start}}"},
        "missed_fire": "all",
        "catch_up_limit": 3,
        "overlap": "skip"
    })
}

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

async fn apis() -> Vec<TestApi> {
    let mut out = Vec::new();
    for db in TestDb::all().await {
        out.push(TestApi::builder().db(db).start().await);
    }
    out
}

#[tokio::test]
async fn create_list_get_patch_delete() {
    for api in apis().await {
        // The defaults are seeded with the database.
        let r = api.get("/api/v1/schedules", SUBMITTER).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let names: Vec<&str> = r.body["schedules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "daily-aggregation",
                "daily-cleanup",
                "hourly-aggregation",
                "weekly-export"
            ]
        );
        assert!(r.body["schedules"][0]["next_fire_at"].is_string());

        let r = api.post("/api/v1/schedules", ADMIN, nightly()).await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(
            r.header("Location"),
            Some("/api/v1/schedules/nightly-rollup")
        );
        assert_eq!(r.body["timezone"], "Europe/Berlin");
        assert_eq!(r.body["missed_fire"], "all");
        assert_eq!(r.body["recent_fires"], json!([]));
        // 02:30 Berlin is 00:30 or 01:30 UTC.
        let next = r.body["next_fire_at"].as_str().unwrap();
        assert!(
            next.contains("T00:30:00") || next.contains("T01:30:00"),
            "{next}"
        );

        let r = api.get("/api/v1/schedules/nightly-rollup", SUBMITTER).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["cron"], "30 2 * * *");

        let r = patch(
            &api,
            "/api/v1/schedules/nightly-rollup",
            ADMIN,
            json!({"cron": "0 3 * * *", "enabled": false}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["cron"], "0 3 * * *");
        assert_eq!(r.body["enabled"], false);
        assert!(r.body.get("next_fire_at").is_none(), "{}", r.body);
        assert_eq!(r.body["queue"], "aggregation");

        let r = api.delete("/api/v1/schedules/nightly-rollup", ADMIN).await;
        assert_eq!(r.status, 204);
        let r = api.get("/api/v1/schedules/nightly-rollup", SUBMITTER).await;
        r.assert_error(404, "not_found");
    }
}

/// How a bad schedule is refused: 422 for what no schema can check (an expression that
/// does not parse, an unknown timezone, a payload the queue would refuse), 400 for what
/// the document already rules out.
fn expected_refusal(field: &str) -> (u16, &'static str) {
    if field == "cron" || field == "timezone" || field.starts_with("payload.") {
        (422, "unprocessable")
    } else {
        (400, "validation_failed")
    }
}

#[tokio::test]
async fn bad_schedules_are_refused_naming_the_field_and_change_nothing() {
    for api in apis().await {
        for (change, field) in [
            (json!({"cron": "* * *"}), "cron"),
            (json!({"cron": "0 25 * * *"}), "cron"),
            (json!({"timezone": "Mars/Olympus"}), "timezone"),
            (json!({"queue": "email"}), "queue"),
            (json!({"missed_fire": "twice"}), "missed_fire"),
            (json!({"overlap": "queue"}), "overlap"),
            (json!({"catch_up_limit": 5000}), "catch_up_limit"),
            (json!({"name": "Not A Name"}), "name"),
            (
                json!({"payload": {"granularity": "week", "bucket_start": "{{day_start}}"}}),
                "payload.granularity",
            ),
            (
                json!({"payload": {"granularity": "day", "bucket_start": "{{tomorrow}}"}}),
                "payload.bucket_start",
            ),
            (
                json!({"payload": {"granularity": "day"}}),
                "payload.bucket_start",
            ),
            (json!({"colour": "red"}), "colour"),
        ] {
            let mut body = nightly();
            for (k, v) in change.as_object().unwrap() {
                body[k] = v.clone();
            }
            let r = api.post("/api/v1/schedules", ADMIN, body).await;
            let (status, code) = expected_refusal(field);
            r.assert_error(status, code);
            assert_eq!(r.field(), field, "{change}: {}", r.body);
        }
        let r = api.get("/api/v1/schedules/nightly-rollup", ADMIN).await;
        r.assert_error(404, "not_found");

        // Patch: the same checks; nothing changes.
        assert_eq!(
            api.post("/api/v1/schedules", ADMIN, nightly()).await.status,
            201
        );
        for (change, field) in [
            (json!({"cron": "61 * * * *"}), "cron"),
            (json!({"timezone": "Nowhere"}), "timezone"),
            (json!({"queue": "cleanup"}), "payload.bucket_start"),
            (json!({"payload": [1]}), "payload"),
            (json!({"name": "renamed"}), "name"),
        ] {
            let r = patch(
                &api,
                "/api/v1/schedules/nightly-rollup",
                ADMIN,
                change.clone(),
            )
            .await;
            let (status, code) = expected_refusal(field);
            r.assert_error(status, code);
            assert_eq!(r.field(), field, "{change}: {}", r.body);
        }
        let r = api.get("/api/v1/schedules/nightly-rollup", ADMIN).await;
        assert_eq!(r.body["cron"], "30 2 * * *");
        assert_eq!(r.body["queue"], "aggregation");

        // A name in use.
        let r = api.post("/api/v1/schedules", ADMIN, nightly()).await;
        r.assert_error(409, "conflict");
        // Unknown names.
        patch(
            &api,
            "/api/v1/schedules/nope",
            ADMIN,
            json!({"enabled": true}),
        )
        .await
        .assert_error(404, "not_found");
        api.delete("/api/v1/schedules/nope", ADMIN)
            .await
            .assert_error(404, "not_found");
        api.post("/api/v1/schedules/nope/trigger", ADMIN, json!({}))
            .await
            .assert_error(404, "not_found");
        api.get("/api/v1/schedules/nope", SUBMITTER)
            .await
            .assert_error(404, "not_found");
    }
}

#[tokio::test]
async fn writing_needs_an_admin_key_and_reading_any_key() {
    for api in apis().await {
        api.get("/api/v1/schedules", "no-such-key")
            .await
            .assert_error(401, "unauthorized");
        api.post("/api/v1/schedules", SUBMITTER, nightly())
            .await
            .assert_error(403, "forbidden");
        patch(
            &api,
            "/api/v1/schedules/daily-cleanup",
            SUBMITTER,
            json!({"enabled": false}),
        )
        .await
        .assert_error(403, "forbidden");
        api.delete("/api/v1/schedules/daily-cleanup", SUBMITTER)
            .await
            .assert_error(403, "forbidden");
        api.post(
            "/api/v1/schedules/daily-cleanup/trigger",
            SUBMITTER,
            json!({}),
        )
        .await
        .assert_error(403, "forbidden");
        // Nothing changed.
        let r = api.get("/api/v1/schedules/daily-cleanup", SUBMITTER).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["enabled"], true);
        assert_eq!(api.total_jobs().await, 0);
    }
}

#[tokio::test]
async fn a_trigger_enqueues_a_job_recorded_as_a_manual_fire() {
    for api in apis().await {
        let r = api
            .post("/api/v1/schedules/daily-cleanup/trigger", ADMIN, json!({}))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body["manual"], true);
        assert_eq!(r.body["status"], "enqueued");
        let job_id = r.body["job_id"].as_str().unwrap().to_owned();
        let job = api
            .queue(QueueName::Cleanup)
            .get(&job_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.payload, json!({}));
        // Twice: two jobs, two manual fires.
        let again = api
            .post("/api/v1/schedules/daily-cleanup/trigger", ADMIN, json!({}))
            .await;
        assert_eq!(again.status, 201);
        assert_ne!(again.body["job_id"], r.body["job_id"]);
        assert_eq!(api.total_jobs().await, 2);

        let r = api.get("/api/v1/schedules/daily-cleanup", SUBMITTER).await;
        assert_eq!(r.body["recent_fires"].as_array().unwrap().len(), 2);
        assert_eq!(r.body["last_job"]["id"], again.body["job_id"]);
        assert_eq!(r.body["last_job"]["state"], "waiting");
        let r = api.get("/api/v1/schedules", SUBMITTER).await;
        let cleanup = r.body["schedules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "daily-cleanup")
            .unwrap()
            .clone();
        assert_eq!(cleanup["last_job"]["state"], "waiting");
        assert_eq!(cleanup["last_fire"]["manual"], true);
    }
}

#[tokio::test]
async fn no_idempotency_key_reaches_a_fire_and_a_reused_key_is_a_conflict() {
    use chrono::{DurationRound, Timelike, Utc};
    let api = TestApi::start().await;
    let at = (Utc::now() + chrono::Duration::seconds(3))
        .duration_trunc(chrono::Duration::seconds(1))
        .unwrap();
    let cron = format!(
        "{} {} {} {} {} *",
        at.second(),
        at.minute(),
        at.hour(),
        at.format("%-d"),
        at.format("%-m")
    );
    let mut body = nightly();
    body["name"] = json!("hijack-me");
    body["cron"] = json!(cron);
    body["timezone"] = json!("UTC");
    body["queue"] = json!("cleanup");
    body["payload"] = json!({"dry_run": true});
    assert_eq!(api.post("/api/v1/schedules", ADMIN, body).await.status, 201);
    // A client sends the fire's own key (and its old form) before the fire.
    let internal =
        drover_scheduler::fire::idempotency_key("hijack-me", &at.timestamp_millis().to_string());
    let send = |key: String, queue: &'static str, payload: Value| {
        api.req(
            reqwest::Method::POST,
            &format!("/api/v1/queues/{queue}/jobs"),
            SUBMITTER,
        )
        .header("Idempotency-Key", key)
        .json(&json!({ "payload": payload }))
        .send()
    };
    let mut client_jobs = Vec::new();
    for key in [
        internal.clone(),
        format!("schedule:hijack-me:{}", at.timestamp()),
    ] {
        let r = Reply::of(send(key, "cleanup", json!({})).await.unwrap()).await;
        assert_eq!(r.status, 201, "{}", r.body);
        client_jobs.push(r.body["id"].as_str().unwrap().to_owned());
    }
    // A scheduler fires it.
    let env = drover_jobs::env::Env::from_pairs(vec![
        ("REDIS_URL".to_owned(), drover_tests::shared_redis_url()),
        ("DROVER_REDIS_NAMESPACE".to_owned(), api.namespace.clone()),
        (
            "DATABASE_URL".to_owned(),
            api.config.common.database_url.clone(),
        ),
        ("DROVER_SCHEDULER_TICK_MS".to_owned(), "100".to_owned()),
        ("DROVER_SCHEDULER_LOCK_TTL_MS".to_owned(), "1000".to_owned()),
        ("DROVER_SCHEDULER_METRICS_ADDR".to_owned(), "off".to_owned()),
    ]);
    let config = drover_scheduler::config::SchedulerConfig::from_env(&env).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(drover_scheduler::run(config, async move {
        let _ = stopped.await;
    }));
    let fire = drover_tests::eventually_async(common::T, "the fire", || async {
        drover_scheduler::store::recent(&api.dbc, "hijack-me", 1)
            .await
            .unwrap()
            .into_iter()
            .find(|f| f.status == "enqueued")
    })
    .await;
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    let fire_job = fire.job_id.unwrap();
    assert!(
        !client_jobs.contains(&fire_job),
        "a client owns the fire's job"
    );
    let job = api
        .queue(QueueName::Cleanup)
        .get(&fire_job)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.payload, json!({"dry_run": true}));
    // After the fire, the key still names the client's own job, never the fire's.
    let r = Reply::of(send(internal.clone(), "cleanup", json!({})).await.unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], json!(client_jobs[0]));
    // The same key with another payload, or on another queue: a conflict naming the job.
    let r = Reply::of(
        send(internal.clone(), "cleanup", json!({"dry_run": true}))
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(409, "idempotency_key_reused");
    assert_eq!(r.body["error"]["details"]["job_id"], json!(client_jobs[0]));
    let r = Reply::of(
        send(
            internal,
            "aggregation",
            json!({"granularity": "hour", "bucket_start": "2026-01-01T00:00:00Z"}),
        )
        .await
        .unwrap(),
    )
    .await;
    r.assert_error(409, "idempotency_key_reused");
    assert_eq!(r.body["error"]["details"]["job_id"], json!(client_jobs[0]));
    assert_eq!(api.total_jobs().await, 3);
}
