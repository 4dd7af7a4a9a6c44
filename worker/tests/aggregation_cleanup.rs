//! Aggregation and cleanup, run without a queue against a real Redis (a namespace of
//! the test's own) and SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

mod common;

use std::time::{Duration, SystemTime};

use chrono::{DurationRound, Utc};
use drover_entities::{aggregate, export as exports, job_history};
use drover_jobs::kinds::{Granularity, Retention};
use drover_jobs::{QueueName, data_dir};
use drover_queue::{NewJob, Queue, QueueSettings, Redis, RedisConfig};
use drover_worker::aggregation;
use drover_worker::cleanup::{self, CleanupSettings};
use sea_orm::{ActiveValue::Set, EntityTrait, PaginatorTrait, QueryOrder};

const WINDOW: Duration = Duration::from_secs(48 * 3600);

fn queues(ns: &str) -> Vec<Queue> {
    let redis = Redis::new(RedisConfig::new(drover_tests::shared_redis_url())).unwrap();
    QueueName::ALL
        .iter()
        .map(|q| {
            Queue::with_settings(
                redis.clone(),
                ns,
                q.as_str(),
                q.defaults(),
                QueueSettings::default(),
            )
            .unwrap()
        })
        .collect()
}

async fn hset(q: &Queue, minute: i64, fields: &[(&str, u64)]) {
    let mut cmd = redis::cmd("HSET");
    cmd.arg(q.keys().stats(minute));
    for (k, v) in fields {
        cmd.arg(*k).arg(*v);
    }
    let _: u64 = q.redis().query(&cmd).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_gives_hand_computed_values_and_a_second_run_changes_nothing() {
    for (_t, db) in common::databases().await {
        let ns = drover_tests::namespace();
        let qs = queues(&ns);
        let export = &qs[0];
        assert_eq!(export.name(), "export");
        let now = Utc::now();
        let start =
            now.duration_trunc(chrono::Duration::hours(1)).unwrap() - chrono::Duration::hours(1);
        let m0 = start.timestamp() / 60;
        // What the fetch and ack scripts write, for a known set of jobs: 6 started
        // (120 ms of waits), 4 completed, 1 failed, 2 retried (1000 ms of runs) in the
        // hour; the minute before and the minute after it do not count.
        hset(
            export,
            m0,
            &[
                ("started", 6),
                ("wait_ms", 120),
                ("completed", 3),
                ("failed", 1),
                ("retried", 2),
                ("run_ms", 600),
            ],
        )
        .await;
        hset(
            export,
            m0 + 59,
            &[("completed", 1), ("run_ms", 400), ("stalled", 1)],
        )
        .await;
        hset(export, m0 - 1, &[("completed", 1000), ("run_ms", 1)]).await;
        hset(export, m0 + 60, &[("completed", 1000), ("run_ms", 1)]).await;

        let s = aggregation::run(&db, &qs, Granularity::Hour, start, WINDOW, now)
            .await
            .unwrap();
        assert_eq!(s.rows, 4 * 9, "nine metrics for each of the four queues");
        let rows = aggregate::Entity::find()
            .order_by_asc(aggregate::Column::Id)
            .all(&db)
            .await
            .unwrap();
        let value = |subject: &str, metric: &str| {
            rows.iter()
                .find(|r| r.subject == subject && r.metric == metric)
                .unwrap_or_else(|| panic!("{subject} {metric} missing"))
                .value
        };
        assert_eq!(value("export", "started"), 6.0);
        assert_eq!(value("export", "completed"), 4.0);
        assert_eq!(value("export", "failed"), 1.0);
        assert_eq!(value("export", "retried"), 2.0);
        assert_eq!(value("export", "stalled"), 1.0);
        assert_eq!(value("export", "run_ms_sum"), 1000.0);
        assert_eq!(value("export", "wait_ms_sum"), 120.0);
        assert_eq!(value("export", "run_ms_avg"), 1000.0 / 7.0);
        assert_eq!(value("export", "wait_ms_avg"), 20.0);
        assert_eq!(value("analysis", "completed"), 0.0);
        assert!(
            rows.iter()
                .all(|r| r.bucket_start == start && r.granularity == "hour")
        );

        // Again, later: the same rows, untouched.
        let later = now + chrono::Duration::minutes(5);
        aggregation::run(&db, &qs, Granularity::Hour, start, WINDOW, later)
            .await
            .unwrap();
        let again = aggregate::Entity::find()
            .order_by_asc(aggregate::Column::Id)
            .all(&db)
            .await
            .unwrap();
        assert_eq!(again, rows, "a second run changes nothing");

        // The day holds the hour, and the minutes around it.
        let day = start.duration_trunc(chrono::Duration::days(1)).unwrap();
        if day >= now - chrono::Duration::hours(47) {
            aggregation::run(&db, &qs, Granularity::Day, day, WINDOW, now)
                .await
                .unwrap();
            let n = aggregate::Entity::find().count(&db).await.unwrap();
            assert_eq!(n, 2 * 4 * 9);
        }

        // A bucket whose counters are gone is refused, and its rows stay.
        let err = aggregation::run(
            &db,
            &qs,
            Granularity::Hour,
            start,
            WINDOW,
            now + chrono::Duration::hours(60),
        )
        .await
        .unwrap_err();
        assert!(err.is_permanent(), "{err}");
        let after = aggregate::Entity::find()
            .order_by_asc(aggregate::Column::Id)
            .all(&db)
            .await
            .unwrap();
        assert_eq!(&after[..rows.len()], &rows[..]);
    }
}

fn set_age(path: &std::path::Path, age: Duration) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_changes_nothing_and_a_real_run_removes_what_it_listed() {
    for (_t, db) in common::databases().await {
        let ns = drover_tests::namespace();
        let qs = queues(&ns);
        let q = &qs[0];
        let data = tempfile::tempdir().unwrap();
        let now = Utc::now();
        // 100 archived jobs finished around 2026-11-20, 10 finished just now.
        common::seed_history(&db, 100).await;
        let fresh = (0..10).map(|i| {
            let mut r = common::history_row(1000 + i);
            r.finished_at = Set(Some(now));
            r
        });
        job_history::Entity::insert_many(fresh)
            .exec_without_returning(&db)
            .await
            .unwrap();
        // Two exports: one expired, one not; each with its file.
        let exports_dir = data_dir::exports_dir(data.path());
        let tmp = data_dir::tmp_dir(data.path());
        std::fs::create_dir_all(&exports_dir).unwrap();
        std::fs::create_dir_all(&tmp).unwrap();
        for (id, expires) in [
            ("01KEXPIRED", now - chrono::Duration::hours(1)),
            ("01KKEPT", now + chrono::Duration::hours(1)),
        ] {
            let name = data_dir::export_file_name(id, 1, "csv", false);
            std::fs::write(exports_dir.join(&name), b"a\n").unwrap();
            exports::Entity::insert(exports::ActiveModel {
                id: Set(id.to_owned()),
                source: Set("job_history".to_owned()),
                format: Set("csv".to_owned()),
                gzip: Set(false),
                filters: Set("{}".to_owned()),
                file_name: Set(name),
                bytes: Set(2),
                rows: Set(1),
                sha256: Set("00".repeat(32)),
                attempt: Set(1),
                created_at: Set(now - chrono::Duration::hours(2)),
                expires_at: Set(expires),
            })
            .exec_without_returning(&db)
            .await
            .unwrap();
        }
        // Temporary files of a killed export and upload (old) and of a running one.
        for (name, age_h) in [
            ("export.01KDEAD.1.part", 30),
            ("upload.01KDEAD.part", 48),
            ("export.01KLIVE.1.part", 0),
        ] {
            let p = tmp.join(name);
            std::fs::write(&p, b"half").unwrap();
            set_age(&p, Duration::from_secs(age_h * 3600));
        }
        // An orphan export file (killed between rename and row), old.
        let orphan = exports_dir.join("export-01KORPHAN-1.csv");
        std::fs::write(&orphan, b"x").unwrap();
        set_age(&orphan, Duration::from_secs(30 * 3600));
        // A counter key past the window that lost its TTL, and a current one.
        let old_minute = (now - chrono::Duration::hours(72)).timestamp() / 60;
        hset(q, old_minute, &[("completed", 1)]).await;
        hset(q, now.timestamp() / 60, &[("completed", 1)]).await;
        // Old events and a new one, and a waiting job.
        for id in ["1000-0", "2000-0"] {
            let _: String = q
                .redis()
                .query(
                    redis::cmd("XADD")
                        .arg(&q.keys().events)
                        .arg(id)
                        .arg("type")
                        .arg("job:queued"),
                )
                .await
                .unwrap();
        }
        let _: String = q
            .redis()
            .query(
                redis::cmd("XADD")
                    .arg(&q.keys().events)
                    .arg("*")
                    .arg("type")
                    .arg("job:queued"),
            )
            .await
            .unwrap();
        let waiting = q.enqueue(NewJob::raw("{}".to_owned())).await.unwrap().id;

        let retention = Retention {
            history_days: 5,
            ..Retention::default()
        };
        let snapshot = |db: sea_orm::DatabaseConnection| async move {
            (
                job_history::Entity::find().count(&db).await.unwrap(),
                exports::Entity::find().count(&db).await.unwrap(),
            )
        };
        let before = snapshot(db.clone()).await;
        let (files_before, tmp_before) = (names(&exports_dir), names(&tmp));
        let events_len = |q: Queue| async move {
            let n: u64 = q
                .redis()
                .query(redis::cmd("XLEN").arg(&q.keys().events))
                .await
                .unwrap();
            n
        };
        let ev_before = events_len(q.clone()).await;
        let settings = |dry_run| CleanupSettings {
            retention: &retention,
            dry_run,
            data_dir: data.path(),
            stats_window: WINDOW,
            now,
        };
        let dry = cleanup::run(&db, &qs, &settings(true)).await.unwrap();
        assert!(dry.dry_run);
        let want = [
            ("events", 2),
            ("export_files", 1),
            ("exports", 1),
            ("job_history", 100),
            ("orphan_export_files", 1),
            ("stats_keys", 1),
            ("temp_files", 2),
        ];
        assert_eq!(dry.counts, want.into_iter().collect(), "{dry:?}");
        assert_eq!(dry.exports, ["01KEXPIRED"]);
        // Nothing changed.
        assert_eq!(snapshot(db.clone()).await, before);
        assert_eq!(names(&exports_dir), files_before);
        assert_eq!(names(&tmp), tmp_before);
        assert_eq!(events_len(q.clone()).await, ev_before);
        let exists: bool = q
            .redis()
            .query(redis::cmd("EXISTS").arg(q.keys().stats(old_minute)))
            .await
            .unwrap();
        assert!(exists);

        let real = cleanup::run(&db, &qs, &settings(false)).await.unwrap();
        assert!(!real.dry_run);
        assert_eq!(
            real.counts, dry.counts,
            "the real run removes what the dry run listed"
        );
        assert_eq!(real.exports, dry.exports);
        let mut listed = real.files.clone();
        listed.sort();
        let mut dry_listed = dry.files.clone();
        dry_listed.sort();
        assert_eq!(listed, dry_listed);
        assert_eq!(snapshot(db.clone()).await, (10, 1));
        assert_eq!(
            names(&exports_dir),
            [data_dir::export_file_name("01KKEPT", 1, "csv", false)]
        );
        assert_eq!(names(&tmp), ["export.01KLIVE.1.part"]);
        assert_eq!(events_len(q.clone()).await, ev_before - 2);
        let exists: bool = q
            .redis()
            .query(redis::cmd("EXISTS").arg(q.keys().stats(old_minute)))
            .await
            .unwrap();
        assert!(!exists);
        // The waiting job is untouched.
        let job = q.get(&waiting).await.unwrap().unwrap();
        assert_eq!(job.state, drover_queue::JobState::Waiting);
        // Nothing left to do.
        let third = cleanup::run(&db, &qs, &settings(true)).await.unwrap();
        assert!(third.counts.values().all(|&n| n == 0), "{third:?}");
        let _: u64 = q
            .redis()
            .query(
                redis::cmd("DEL")
                    .arg(&q.keys().events)
                    .arg(q.keys().stats(now.timestamp() / 60))
                    .arg(&q.keys().wait)
                    .arg(q.keys().job(&waiting)),
            )
            .await
            .unwrap();
    }
}
