//! What the worker's tests share: fresh migrated databases and archive rows to export.
#![allow(dead_code, clippy::unwrap_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use drover_entities::{aggregate, job_history};
use drover_tests::TestDb;
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait};

/// A migrated database of each engine the machine offers.
pub async fn databases() -> Vec<(TestDb, DatabaseConnection)> {
    let mut out = Vec::new();
    for t in TestDb::all().await {
        let db = drover_jobs::connect::database(t.url()).await.unwrap();
        drover_jobs::connect::migrate(&db).await.unwrap();
        out.push((t, db));
    }
    out
}

/// A fixed instant to build rows around.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap()
}

/// The i-th archived job: queues and states cycle, every 7th has no result and a
/// request id with a comma and a quote (CSV quoting), finish times a minute apart.
pub fn history_row(i: u64) -> job_history::ActiveModel {
    let queues = ["export", "analysis", "aggregation", "cleanup"];
    let queue = queues[(i % 4) as usize];
    let failed = i.is_multiple_of(3);
    let created = t0() + Duration::minutes(i as i64);
    job_history::ActiveModel {
        // Sortable like ULIDs: the export pages by id.
        id: Set(format!("01K{i:023}")),
        queue: Set(queue.to_owned()),
        state: Set(if failed { "failed" } else { "completed" }.to_owned()),
        payload: Set(format!(
            r#"{{"n":{i},"text":"line one\nline \"two\", ok"}}"#
        )),
        result: Set((!i.is_multiple_of(7)).then(|| format!(r#"{{"rows":{i}}}"#))),
        errors: Set(if failed {
            format!(r#"[{{"attempt":1,"error":"boom {i}"}}]"#)
        } else {
            "[]".to_owned()
        }),
        failed_reason: Set(failed.then(|| "permanent".to_owned())),
        attempts: Set(1 + (i % 3) as i32),
        max_attempts: Set(3),
        priority: Set(0),
        request_id: Set(i.is_multiple_of(7).then(|| format!("req,\"{i}\""))),
        created_at: Set(created),
        started_at: Set(Some(created + Duration::seconds(1))),
        finished_at: Set(Some(created + Duration::seconds(2))),
        archived_at: Set(created + Duration::seconds(3)),
        ..Default::default()
    }
}

/// Inserts `n` archived jobs.
pub async fn seed_history(db: &DatabaseConnection, n: u64) {
    let mut i = 0;
    while i < n {
        let end = (i + 500).min(n);
        job_history::Entity::insert_many((i..end).map(history_row))
            .exec_without_returning(db)
            .await
            .unwrap();
        i = end;
    }
}

/// Inserts `n` aggregate rows, one hour apart.
pub async fn seed_aggregates(db: &DatabaseConnection, n: u64) {
    let rows = (0..n).map(|i| aggregate::ActiveModel {
        bucket_start: Set(t0() + Duration::hours(i as i64)),
        granularity: Set("hour".to_owned()),
        scope: Set("queue".to_owned()),
        subject: Set(if i % 2 == 0 { "export" } else { "analysis" }.to_owned()),
        metric: Set("completed".to_owned()),
        value: Set(i as f64 * 1.5),
        computed_at: Set(t0()),
        ..Default::default()
    });
    aggregate::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await
        .unwrap();
}
