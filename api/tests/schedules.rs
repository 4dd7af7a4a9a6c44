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
            r.assert_error(400, "validation_failed");
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
            r.assert_error(400, "validation_failed");
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
