//! `GET /api/v1/aggregates`: the aggregation job's values, oldest bucket first, with
//! filters and a cursor, and 400 to bad filters, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

mod common;

use common::*;

#[tokio::test]
async fn aggregates_are_filtered_paged_and_checked() {
    use drover_entities::aggregate;
    use sea_orm::{ActiveModelTrait, Set};

    for db in drover_tests::TestDb::all().await {
        let engine = db.engine();
        let api = TestApi::builder().db(db).start().await;
        let day = chrono::DateTime::from_timestamp(1_764_547_200, 0).unwrap(); // 2025-12-01T00:00Z
        // Six hourly buckets × (export completed, export failed, analysis completed), and
        // one daily value: 19 rows.
        for h in 0..6i64 {
            for (subject, metric, value) in [
                ("export", "completed", 10.0 * h as f64),
                ("export", "failed", h as f64),
                ("analysis", "completed", 100.0 + h as f64),
            ] {
                aggregate::ActiveModel {
                    bucket_start: Set(day + chrono::Duration::hours(h)),
                    granularity: Set("hour".to_owned()),
                    scope: Set("queue".to_owned()),
                    subject: Set(subject.to_owned()),
                    metric: Set(metric.to_owned()),
                    value: Set(value),
                    computed_at: Set(day + chrono::Duration::days(1)),
                    ..Default::default()
                }
                .insert(&api.dbc)
                .await
                .unwrap();
            }
        }
        aggregate::ActiveModel {
            bucket_start: Set(day),
            granularity: Set("day".to_owned()),
            scope: Set("queue".to_owned()),
            subject: Set("export".to_owned()),
            metric: Set("completed".to_owned()),
            value: Set(150.0),
            computed_at: Set(day + chrono::Duration::days(1)),
            ..Default::default()
        }
        .insert(&api.dbc)
        .await
        .unwrap();

        // Everything, 4 per page: 19 rows, oldest bucket first, each once.
        let mut seen = Vec::new();
        let mut path = "/api/v1/aggregates?limit=4".to_owned();
        let mut pages = 0;
        loop {
            let r = api.get(&path, SUBMITTER).await;
            assert_eq!(r.status, 200, "{engine:?} {path}: {}", r.body);
            pages += 1;
            for a in r.body["aggregates"].as_array().unwrap() {
                seen.push((
                    a["bucket_start"].as_str().unwrap().to_owned(),
                    a["granularity"].as_str().unwrap().to_owned(),
                    a["subject"].as_str().unwrap().to_owned(),
                    a["metric"].as_str().unwrap().to_owned(),
                ));
            }
            match r.body["links"]["next"].as_str() {
                Some(next) => path = next.to_owned(),
                None => break,
            }
        }
        assert_eq!(seen.len(), 19, "{engine:?} {seen:?}");
        assert_eq!(pages, 5);
        let mut sorted = seen.clone();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            seen.iter().map(|s| &s.0).collect::<Vec<_>>(),
            sorted.iter().map(|s| &s.0).collect::<Vec<_>>()
        );
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 19);

        // One metric of one queue, hourly, in [01:00, 04:00): the values written.
        let from = enc(&(day + chrono::Duration::hours(1)).to_rfc3339());
        let to = enc(&(day + chrono::Duration::hours(4)).to_rfc3339());
        let r = api
            .get(
                &format!("/api/v1/aggregates?metric=completed&queue=export&granularity=hour&from={from}&to={to}"),
                SUBMITTER,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let values: Vec<f64> = r.body["aggregates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                assert_eq!(a["subject"], "export");
                assert_eq!(a["metric"], "completed");
                assert_eq!(a["granularity"], "hour");
                a["value"].as_f64().unwrap()
            })
            .collect();
        assert_eq!(values, [10.0, 20.0, 30.0], "{engine:?}");

        // The daily value alone.
        let r = api
            .get("/api/v1/aggregates?granularity=day", SUBMITTER)
            .await;
        let a = r.body["aggregates"].as_array().unwrap();
        assert_eq!(a.len(), 1, "{}", r.body);
        assert_eq!(a[0]["value"], 150.0);

        // Bad input: 400 in the one error shape.
        for bad in [
            "/api/v1/aggregates?queue=mail".to_owned(),
            "/api/v1/aggregates?granularity=week".to_owned(),
            "/api/v1/aggregates?metric=Bad-Metric".to_owned(),
            "/api/v1/aggregates?cursor=nonsense".to_owned(),
            "/api/v1/aggregates?cursor=1_..%2Fx".to_owned(),
            "/api/v1/aggregates?limit=0".to_owned(),
            "/api/v1/aggregates?limit=5001".to_owned(),
            "/api/v1/aggregates?from=yesterday".to_owned(),
        ] {
            let r = api.get(&bad, SUBMITTER).await;
            assert_eq!(r.status, 400, "{bad}: {}", r.body);
            assert!(r.body["error"]["message"].is_string(), "{bad}: {}", r.body);
        }
        // A range that ends before it starts fits the schema: 422, naming the field.
        let r = api
            .get(
                &format!("/api/v1/aggregates?from={to}&to={from}"),
                SUBMITTER,
            )
            .await;
        assert_eq!(r.status, 422, "{}", r.body);
        assert_eq!(r.body["error"]["details"]["field"], "to", "{}", r.body);
        // Without a key: 401.
        let r = api.get("/api/v1/aggregates", "").await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
}

fn enc(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}
