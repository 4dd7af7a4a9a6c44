#![allow(clippy::unwrap_used)] // Tests fail by panicking.
//! Tenants: a submitter key reads only the jobs it submitted (in Redis and in the
//! archive, on every read path), a key scoped to queues uses only those, and an admin
//! key reads everything; a job that is not the key's is a 404, as if it did not exist.
//! On SQLite and, when `TEST_DATABASE_URL` is set, PostgreSQL.

mod common;

use common::*;
use drover_api::auth::Role;
use drover_api::auth::keys;
use drover_entities::job_history;
use drover_jobs::QueueName;
use drover_tests::TestDb;
use sea_orm::{ActiveModelTrait, Set};
use serde_json::json;

/// The status of a GET whose body may be an endless event stream: only the head is read.
async fn status_of(api: &TestApi, path: &str, key: &str) -> u16 {
    api.req(reqwest::Method::GET, path, key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn ids(r: &Reply) -> Vec<String> {
    r.body["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("no jobs in {}", r.body))
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn submit_as(api: &TestApi, key: &str, queue: &str, idempotency: Option<&str>) -> Reply {
    let mut req = api
        .req(
            reqwest::Method::POST,
            &format!("/api/v1/queues/{queue}/jobs"),
            key,
        )
        .json(&json!({ "payload": {} }));
    if let Some(k) = idempotency {
        req = req.header("Idempotency-Key", k);
    }
    Reply::of(req.send().await.unwrap()).await
}

fn archived_row(id: &str, submitter: i64) -> job_history::ActiveModel {
    let t = chrono::DateTime::from_timestamp_millis(
        (chrono::Utc::now() - chrono::Duration::hours(1)).timestamp_millis(),
    )
    .unwrap();
    job_history::ActiveModel {
        id: Set(id.to_owned()),
        queue: Set("cleanup".to_owned()),
        state: Set("completed".to_owned()),
        payload: Set("{}".to_owned()),
        errors: Set("[]".to_owned()),
        attempts: Set(1),
        max_attempts: Set(1),
        priority: Set(0),
        created_at: Set(t),
        finished_at: Set(Some(t)),
        archived_at: Set(t),
        submitter_key_id: Set(Some(submitter)),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_submitter_key_reads_only_its_own_jobs_and_an_admin_reads_all() {
    for db in TestDb::all().await {
        let engine = db.engine();
        let api = TestApi::builder().db(db).start().await;
        let (a_row, a) = keys::create_key(&api.dbc, "tenant a", Role::Submitter, "cli")
            .await
            .unwrap();
        let (b_row, b) = keys::create_key(&api.dbc, "tenant b", Role::Submitter, "cli")
            .await
            .unwrap();

        // A's job, in Redis: the job hash keeps the submitting key.
        let r = submit_as(&api, &a, "cleanup", Some("shared-key")).await;
        assert_eq!(r.status, 201, "{engine:?}: {}", r.body);
        let mine = r.body["id"].as_str().unwrap().to_owned();
        let record = api
            .queue(QueueName::Cleanup)
            .get(&mine)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.submitter, Some(a_row.id));

        // get, in its queue and in any queue
        for path in [
            format!("/api/v1/queues/cleanup/jobs/{mine}"),
            format!("/api/v1/jobs/{mine}"),
        ] {
            assert_eq!(api.get(&path, &a).await.status, 200, "{engine:?} {path}");
            assert_eq!(api.get(&path, ADMIN).await.status, 200, "{engine:?} {path}");
            api.get(&path, &b).await.assert_error(404, "not_found");
        }

        // list: B's page of the same queue does not hold A's job
        let list = "/api/v1/queues/cleanup/jobs?state=waiting&limit=1000";
        assert!(ids(&api.get(list, &a).await).contains(&mine));
        assert!(ids(&api.get(list, ADMIN).await).contains(&mine));
        assert!(!ids(&api.get(list, &b).await).contains(&mine), "{engine:?}");

        // a job's events, and the events stream filtered to that job
        let events = format!("/api/v1/jobs/{mine}/events");
        assert_eq!(status_of(&api, &events, &a).await, 200);
        assert_eq!(status_of(&api, &events, ADMIN).await, 200);
        assert_eq!(status_of(&api, &events, &b).await, 404);
        let filtered = format!("/api/v1/sse/events?job_id={mine}");
        assert_eq!(status_of(&api, &filtered, &a).await, 200);
        assert_eq!(status_of(&api, &filtered, ADMIN).await, 200);
        assert_eq!(status_of(&api, &filtered, &b).await, 404);
        // A whole queue's stream would show other tenants' jobs: admins only.
        let whole = "/api/v1/sse/events?queue=cleanup";
        assert_eq!(status_of(&api, whole, &b).await, 403);
        assert_eq!(status_of(&api, whole, ADMIN).await, 200);

        // The same Idempotency-Key from another tenant is another job, not A's.
        let r = submit_as(&api, &b, "cleanup", Some("shared-key")).await;
        assert_eq!(r.status, 201, "{engine:?}: {}", r.body);
        let theirs = r.body["id"].as_str().unwrap().to_owned();
        assert_ne!(theirs, mine);
        let r = submit_as(&api, &a, "cleanup", Some("shared-key")).await;
        assert_eq!(
            (r.status, r.body["id"].as_str()),
            (200, Some(mine.as_str()))
        );

        // The archive: each tenant reads its own rows; the admin reads both.
        archived_row("01JTENANTA0000000000000000", a_row.id)
            .insert(&api.dbc)
            .await
            .unwrap();
        archived_row("01JTENANTB0000000000000000", b_row.id)
            .insert(&api.dbc)
            .await
            .unwrap();
        let history = "/api/v1/history?queue=cleanup";
        assert_eq!(
            ids(&api.get(history, &a).await),
            ["01JTENANTA0000000000000000"],
            "{engine:?}"
        );
        assert_eq!(
            ids(&api.get(history, &b).await),
            ["01JTENANTB0000000000000000"],
            "{engine:?}"
        );
        assert_eq!(ids(&api.get(history, ADMIN).await).len(), 2);
        for path in [
            "/api/v1/jobs/01JTENANTA0000000000000000",
            "/api/v1/queues/cleanup/jobs/01JTENANTA0000000000000000",
        ] {
            assert_eq!(api.get(path, &a).await.status, 200, "{engine:?} {path}");
            api.get(path, &b).await.assert_error(404, "not_found");
        }
        assert_eq!(
            status_of(&api, "/api/v1/jobs/01JTENANTA0000000000000000/events", &b).await,
            404
        );
        assert_eq!(
            status_of(&api, "/api/v1/jobs/01JTENANTA0000000000000000/events", &a).await,
            200
        );
        api.stop().await;
    }
}

#[tokio::test]
async fn a_key_scoped_to_queues_uses_only_those() {
    for db in TestDb::all().await {
        let engine = db.engine();
        let api = TestApi::builder().db(db).start().await;
        let (row, key) = keys::create_scoped_key(
            &api.dbc,
            "cleanup only",
            Role::Submitter,
            Some(&[QueueName::Cleanup]),
            "cli",
        )
        .await
        .unwrap();
        assert_eq!(row.queues.as_deref(), Some("cleanup"));
        let r = submit_as(&api, &key, "cleanup", None).await;
        assert_eq!(r.status, 201, "{engine:?}: {}", r.body);
        let id = r.body["id"].as_str().unwrap().to_owned();
        assert_eq!(
            api.get(&format!("/api/v1/jobs/{id}"), &key).await.status,
            200
        );

        // Another queue: nothing submitted, nothing listed.
        let before = api.total_jobs().await;
        let r = api
            .post(
                "/api/v1/queues/export/jobs",
                &key,
                json!({ "payload": { "source": "aggregates", "format": "csv" } }),
            )
            .await;
        r.assert_error(403, "forbidden");
        assert_eq!(
            api.total_jobs().await,
            before,
            "a refused submission changes nothing"
        );
        api.get("/api/v1/queues/export/jobs", &key)
            .await
            .assert_error(404, "not_found");
        // A scope of no queue at all is refused when the key is made.
        assert!(
            keys::create_scoped_key(&api.dbc, "nothing", Role::Submitter, Some(&[]), "cli")
                .await
                .is_err()
        );
        api.stop().await;
    }
}
