#![allow(clippy::unwrap_used)] // Tests fail by panicking.
//! Steering jobs and queues over HTTP (delete, retry, promote, metrics, pause, resume,
//! clean, queues, workers), with a real worker moving jobs through their states.

mod common;

use common::*;
use drover_jobs::QueueName;
use drover_queue::JobState;
use drover_tests::each_target;
use serde_json::json;

const UNKNOWN: &str = "01JD4X8Q7W3K9N2M5P6R8T0V1Y";

each_target! {
#[tokio::test]
async fn a_failed_job_is_retried_and_a_delayed_one_promoted(target) {
    let api = TestApi::on(target).await;
    let worker = TestWorker::start(&api, QueueName::Cleanup);
    let q = api.queue(QueueName::Cleanup);

    let failing = api.submit("cleanup", failing_payload(), json!({})).await;
    let failed = wait_state(q, &failing, JobState::Failed).await;
    assert_eq!(failed.errors.len(), 1);
    let path = format!("/api/v1/queues/cleanup/jobs/{failing}");
    let r = api.get(&path, SUBMITTER).await;
    assert_eq!(r.body["state"], "failed");
    assert_eq!(r.body["errors"][0]["attempt"], 1);
    assert!(r.body["errors"][0]["failed_at"].is_string());
    assert_eq!(r.body["failed_reason"], "permanent");

    // Submitters may not; admins may.
    api.post(&format!("{path}/retry"), SUBMITTER, json!({}))
        .await
        .assert_error(403, "forbidden");
    assert_eq!(
        q.get(&failing).await.unwrap().unwrap().state,
        JobState::Failed
    );
    let r = api.post(&format!("{path}/retry"), ADMIN, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], failing.as_str());
    assert!(
        ["waiting", "active", "failed"].contains(&r.body["state"].as_str().unwrap()),
        "{}",
        r.body
    );
    // It runs again (and fails again: two errors now).
    drover_tests::eventually_async(T, "the retried job to fail again", || async {
        q.get(&failing)
            .await
            .unwrap()
            .filter(|j| j.state == JobState::Failed && j.errors.len() == 2)
    })
    .await;

    let delayed = api
        .submit("cleanup", ok_payload(), json!({ "delay_ms": 3_600_000 }))
        .await;
    let dpath = format!("/api/v1/queues/cleanup/jobs/{delayed}");
    // Only failed jobs are retried, only delayed ones promoted.
    api.post(&format!("{dpath}/retry"), ADMIN, json!({}))
        .await
        .assert_error(409, "conflict");
    let r = api
        .post(&format!("{dpath}/promote"), ADMIN, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    wait_state(q, &delayed, JobState::Completed).await;
    api.post(&format!("{dpath}/promote"), ADMIN, json!({}))
        .await
        .assert_error(409, "conflict");
    let done = api.get(&dpath, SUBMITTER).await;
    assert_eq!(done.body["state"], "completed");
    assert_eq!(done.body["result"]["ok"], true);
    assert_eq!(done.body["progress"], 100, "a completed job is done");
    assert!(done.body["finished_at"].is_string() && done.body["started_at"].is_string());

    for action in ["retry", "promote"] {
        api.post(
            &format!("/api/v1/queues/cleanup/jobs/{UNKNOWN}/{action}"),
            ADMIN,
            json!({}),
        )
        .await
        .assert_error(404, "not_found");
        api.post(
            &format!("/api/v1/queues/nope/jobs/{UNKNOWN}/{action}"),
            ADMIN,
            json!({}),
        )
        .await
        .assert_error(404, "not_found");
    }
    worker.stop().await;
}
}

each_target! {
#[tokio::test]
async fn an_active_job_cannot_be_deleted_a_finished_one_can(target) {
    let api = TestApi::on(target).await;
    let worker = TestWorker::start(&api, QueueName::Cleanup);
    let q = api.queue(QueueName::Cleanup);
    let id = api.submit("cleanup", blocking_payload(), json!({})).await;
    wait_state(q, &id, JobState::Active).await;
    let path = format!("/api/v1/queues/cleanup/jobs/{id}");

    api.delete(&path, SUBMITTER)
        .await
        .assert_error(403, "forbidden");
    api.delete(&path, ADMIN).await.assert_error(409, "conflict");
    assert_eq!(q.get(&id).await.unwrap().unwrap().state, JobState::Active);

    worker.gate.0.add_permits(1);
    wait_state(q, &id, JobState::Completed).await;
    let r = api.delete(&path, ADMIN).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(q.get(&id).await.unwrap().is_none());
    api.get(&path, ADMIN).await.assert_error(404, "not_found");
    api.delete(&path, ADMIN)
        .await
        .assert_error(404, "not_found");

    // Waiting jobs can be deleted too.
    let waiting = api
        .submit("cleanup", ok_payload(), json!({ "delay_ms": 600_000 }))
        .await;
    let r = api
        .delete(&format!("/api/v1/queues/cleanup/jobs/{waiting}"), ADMIN)
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(api.total_jobs().await, 0);
    worker.stop().await;
}
}

each_target! {
#[tokio::test]
async fn metrics_count_jobs_per_state_throughput_and_workers(target) {
    let api = TestApi::on(target).await;
    let worker = TestWorker::start(&api, QueueName::Cleanup);
    let q = api.queue(QueueName::Cleanup);
    let a = api.submit("cleanup", ok_payload(), json!({})).await;
    let b = api.submit("cleanup", ok_payload(), json!({})).await;
    let c = api.submit("cleanup", failing_payload(), json!({})).await;
    wait_state(q, &a, JobState::Completed).await;
    wait_state(q, &b, JobState::Completed).await;
    wait_state(q, &c, JobState::Failed).await;
    api.submit("cleanup", ok_payload(), json!({ "delay_ms": 600_000 }))
        .await;
    // Paused, so that a job stays waiting and has an age.
    api.post("/api/v1/queues/cleanup/pause", ADMIN, json!({}))
        .await;
    api.submit("cleanup", ok_payload(), json!({})).await;

    let m = api.get("/api/v1/queues/cleanup/metrics", ADMIN).await;
    assert_eq!(m.status, 200, "{}", m.body);
    let b = &m.body;
    assert_eq!(b["queue"], "cleanup");
    assert_eq!(b["paused"], true);
    assert_eq!(
        b["counts"],
        json!({ "waiting": 1, "delayed": 1, "active": 0, "completed": 2, "failed": 1 })
    );
    assert!(b["oldest_waiting_age_ms"].as_u64().is_some());
    let t = &b["throughput"];
    assert_eq!(t["window_minutes"], 15);
    assert_eq!(t["minutes"].as_array().unwrap().len(), 15);
    assert_eq!(t["completed"], 2);
    assert_eq!(t["failed"], 1);
    let per_minute: u64 = t["minutes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["completed"].as_u64().unwrap())
        .sum();
    assert_eq!(per_minute, 2);
    assert!((t["completed_per_minute"].as_f64().unwrap() - 2.0 / 15.0).abs() < 1e-9);
    assert_eq!(b["live_workers"], 1);
    assert!(b["measured_at"].is_string());

    let all = api.get("/api/v1/queues/metrics", ADMIN).await;
    assert_eq!(all.status, 200, "{}", all.body);
    let queues: Vec<&str> = all.body["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    assert_eq!(queues, ["export", "analysis", "aggregation", "cleanup"]);
    assert_eq!(all.body["totals"]["completed"], 2);
    assert_eq!(all.body["queues"][0]["live_workers"], 0);
    assert!(all.body["queues"][0].get("oldest_waiting_age_ms").is_none());

    api.get("/api/v1/queues/cleanup/metrics", SUBMITTER)
        .await
        .assert_error(403, "forbidden");
    api.get("/api/v1/queues/nope/metrics", ADMIN)
        .await
        .assert_error(404, "not_found");

    let w = api.get("/api/v1/workers", ADMIN).await;
    assert_eq!(w.status, 200, "{}", w.body);
    let workers = w.body["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0]["queue"], "cleanup");
    assert!(workers[0]["id"].as_str().unwrap().starts_with("cleanup"));
    assert!(workers[0]["last_seen_at"].is_string());

    let l = api.get("/api/v1/queues", ADMIN).await;
    assert_eq!(l.status, 200, "{}", l.body);
    let cleanup = &l.body["queues"][3];
    assert_eq!(cleanup["name"], "cleanup");
    assert_eq!(cleanup["paused"], true);
    assert_eq!(cleanup["counts"]["completed"], 2);
    assert_eq!(cleanup["links"]["jobs"], "/api/v1/queues/cleanup/jobs");
    worker.stop().await;
}
}

each_target! {
#[tokio::test]
async fn queues_pause_and_resume(target) {
    let api = TestApi::on(target).await;
    let q = api.queue(QueueName::Export);
    let r = api
        .post("/api/v1/queues/export/pause", ADMIN, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({ "queue": "export", "paused": true, "changed": true })
    );
    assert!(q.is_paused().await.unwrap());
    let r = api
        .post("/api/v1/queues/export/pause", ADMIN, json!({}))
        .await;
    assert_eq!(r.body["changed"], false);

    api.post("/api/v1/queues/export/resume", SUBMITTER, json!({}))
        .await
        .assert_error(403, "forbidden");
    assert!(
        q.is_paused().await.unwrap(),
        "a refused request changes nothing"
    );

    let r = api
        .post("/api/v1/queues/export/resume", ADMIN, json!({}))
        .await;
    assert_eq!(
        r.body,
        json!({ "queue": "export", "paused": false, "changed": true })
    );
    assert!(!q.is_paused().await.unwrap());
    let r = api
        .post("/api/v1/queues/export/resume", ADMIN, json!({}))
        .await;
    assert_eq!(r.body["changed"], false);
    api.post("/api/v1/queues/nope/pause", ADMIN, json!({}))
        .await
        .assert_error(404, "not_found");
    assert!(!api.queue(QueueName::Analysis).is_paused().await.unwrap());
}
}

each_target! {
#[tokio::test]
async fn clean_removes_finished_jobs_up_to_the_limit(target) {
    let api = TestApi::on(target).await;
    let worker = TestWorker::start(&api, QueueName::Cleanup);
    let q = api.queue(QueueName::Cleanup);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(api.submit("cleanup", ok_payload(), json!({})).await);
    }
    let failed = api.submit("cleanup", failing_payload(), json!({})).await;
    for id in &ids {
        wait_state(q, id, JobState::Completed).await;
    }
    wait_state(q, &failed, JobState::Failed).await;

    let path = "/api/v1/queues/cleanup/clean";
    // A grace period longer than their age keeps them.
    let r = api
        .post(
            path,
            ADMIN,
            json!({ "state": "completed", "grace_ms": 3_600_000 }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["removed"], 0);

    for (body, field) in [
        (json!({ "state": "active", "grace_ms": 0 }), "state"),
        (json!({ "state": "completed" }), "grace_ms"),
        (json!({ "state": "completed", "grace_ms": -1 }), "grace_ms"),
        (
            json!({ "state": "completed", "grace_ms": 0, "limit": 0 }),
            "limit",
        ),
        (
            json!({ "state": "completed", "grace_ms": 0, "limit": 100_001 }),
            "limit",
        ),
        (
            json!({ "state": "completed", "grace_ms": 0, "all": true }),
            "all",
        ),
    ] {
        let r = api.post(path, ADMIN, body.clone()).await;
        r.assert_error(400, "validation_failed");
        assert_eq!(r.field(), field, "{body}: {}", r.body);
    }
    api.post(
        path,
        SUBMITTER,
        json!({ "state": "completed", "grace_ms": 0 }),
    )
    .await
    .assert_error(403, "forbidden");
    assert_eq!(
        q.overview().await.unwrap().counts.completed,
        3,
        "nothing removed yet"
    );

    let r = api
        .post(
            path,
            ADMIN,
            json!({ "state": "completed", "grace_ms": 0, "limit": 2 }),
        )
        .await;
    assert_eq!(
        r.body,
        json!({ "queue": "cleanup", "state": "completed", "removed": 2 })
    );
    let r = api
        .post(path, ADMIN, json!({ "state": "completed", "grace_ms": 0 }))
        .await;
    assert_eq!(r.body["removed"], 1);
    let counts = q.overview().await.unwrap().counts;
    assert_eq!((counts.completed, counts.failed), (0, 1));
    let r = api
        .post(path, ADMIN, json!({ "state": "failed", "grace_ms": 0 }))
        .await;
    assert_eq!(r.body["removed"], 1);
    assert_eq!(api.total_jobs().await, 0);
    worker.stop().await;
}
}
