//! `GET /api/v1/history`: the archive, newest first, with a cursor and checked filters,
//! on SQLite and PostgreSQL (read with an admin key: what a submitter key sees of it
//! is in `tenants.rs`).
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

mod common;

use common::*;

#[tokio::test]
async fn the_archive_pages_with_a_cursor_and_checks_its_filters() {
    use drover_entities::job_history;
    use sea_orm::{ActiveModelTrait, Set};

    for db in drover_tests::TestDb::all().await {
        let engine = db.engine();
        let api = TestApi::builder().db(db).start().await;
        let t0 = chrono::Utc::now() - chrono::Duration::days(1);
        let t0 = chrono::DateTime::from_timestamp_millis(t0.timestamp_millis()).unwrap();
        // 7 rows: queue export completed (0..5), analysis failed (5..7); one finish per minute.
        for i in 0..7i64 {
            let (queue, state) = if i < 5 {
                ("export", "completed")
            } else {
                ("analysis", "failed")
            };
            let t = t0 + chrono::Duration::minutes(i);
            job_history::ActiveModel {
                id: Set(format!("01JARCHIVED00000000000000{i:02}")),
                queue: Set(queue.to_owned()),
                state: Set(state.to_owned()),
                payload: Set("{}".to_owned()),
                errors: Set("[]".to_owned()),
                attempts: Set(1),
                max_attempts: Set(1),
                priority: Set(0),
                created_at: Set(t),
                finished_at: Set(Some(t)),
                archived_at: Set(t),
                ..Default::default()
            }
            .insert(&api.dbc)
            .await
            .unwrap();
        }
        // All of it, 3 per page, newest first.
        let mut seen = Vec::new();
        let mut path = "/api/v1/history?limit=3".to_owned();
        loop {
            let r = api.get(&path, ADMIN).await;
            assert_eq!(r.status, 200, "{engine:?} {path}: {}", r.body);
            for j in r.body["jobs"].as_array().unwrap() {
                seen.push(j["id"].as_str().unwrap().to_owned());
                assert!(j["archived_at"].is_string());
            }
            match r.body["links"]["next"].as_str() {
                Some(next) => path = next.to_owned(),
                None => break,
            }
        }
        let expected: Vec<String> = (0..7)
            .rev()
            .map(|i| format!("01JARCHIVED00000000000000{i:02}"))
            .collect();
        assert_eq!(seen, expected, "{engine:?}");

        // Filters.
        let r = api
            .get("/api/v1/history?queue=analysis&state=failed", ADMIN)
            .await;
        assert_eq!(r.body["jobs"].as_array().unwrap().len(), 2, "{}", r.body);
        let from = (t0 + chrono::Duration::minutes(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let to = (t0 + chrono::Duration::minutes(3))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let r = api
            .get(
                &format!(
                    "/api/v1/history?queue=export&from={}&to={}",
                    enc(&from),
                    enc(&to)
                ),
                ADMIN,
            )
            .await;
        let ids: Vec<&str> = r.body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            ["01JARCHIVED0000000000000002", "01JARCHIVED0000000000000001"],
            "{engine:?}"
        );

        // Bad input: 400 in the one error shape.
        for bad in [
            "/api/v1/history?cursor=nonsense".to_owned(),
            "/api/v1/history?cursor=12%7C..%2Fx".to_owned(),
            "/api/v1/history?queue=mail".to_owned(),
            "/api/v1/history?state=waiting".to_owned(),
            "/api/v1/history?limit=0".to_owned(),
        ] {
            let r = api.get(&bad, ADMIN).await;
            assert_eq!(r.status, 400, "{bad}: {}", r.body);
            assert!(r.body["error"]["message"].is_string(), "{bad}: {}", r.body);
        }
        // `from` after `to` fits the document; it is a rule between two fields: 422.
        let bad = format!("/api/v1/history?from={}&to={}", enc(&to), enc(&from));
        let r = api.get(&bad, ADMIN).await;
        r.assert_error(422, "unprocessable");
        assert_eq!(r.field(), "from");
    }
}

fn enc(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}
