//! Retention against a real Redis and real databases (SQLite, and PostgreSQL when
//! `TEST_DATABASE_URL` is set): finished jobs past retention go to `job_history` and
//! leave Redis, nothing else is touched, per-job limits win, archive modes hold, and
//! nothing leaves Redis unless its archive row is committed.
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use drover_entities::job_history;
use drover_queue::retention::{
    ArchiveError, ArchiveMode, ArchiveSink, Enforcer, EnforcerOptions, JobRetention, Limits,
    LimitsOverride, Retention,
};
use drover_queue::worker::WakeHub;
use drover_queue::{JobOptions, JobRecord, JobState, Queue, QueueDefaults, Redis, RedisConfig};
use drover_tests::TestDb;
use drover_tests::finish::{TestJob, TestWorker, run_to_end};
use drover_worker::retention::SqlArchive;
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait};

struct Setup {
    redis: Redis,
    ns: String,
    hub: WakeHub,
}

fn setup() -> Setup {
    let redis = Redis::new(RedisConfig::new(drover_tests::shared_redis_url())).unwrap();
    let ns = drover_tests::namespace();
    let hub = WakeHub::start(redis.clone(), &ns);
    Setup { redis, ns, hub }
}

impl Setup {
    fn queue(&self, name: &str) -> Queue {
        Queue::new(self.redis.clone(), &self.ns, name, QueueDefaults::default()).unwrap()
    }
}

async fn database(t: &TestDb) -> DatabaseConnection {
    let db = drover_jobs::connect::database(t.url()).await.unwrap();
    drover_jobs::connect::migrate(&db).await.unwrap();
    db
}

fn retention(completed: (u64, u64), failed: (u64, u64), archive: ArchiveMode) -> Retention {
    Retention {
        completed: Limits {
            max_age: Duration::from_secs(completed.0),
            max_count: completed.1,
        },
        failed: Limits {
            max_age: Duration::from_secs(failed.0),
            max_count: failed.1,
        },
        archive,
    }
}

const HOUR: u64 = 3600;

/// Every job of `state` in Redis, by id.
async fn in_redis(q: &Queue, state: JobState) -> BTreeMap<String, JobRecord> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = q.list(state, cursor.as_deref(), 1000).await.unwrap();
        for j in page.jobs {
            out.insert(j.id.clone(), j);
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

async fn archived(db: &DatabaseConnection) -> BTreeMap<String, job_history::Model> {
    job_history::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect()
}

/// Runs passes until one finds nothing more to do.
async fn enforce<S: ArchiveSink>(e: &Enforcer<S>) -> u64 {
    let mut removed = 0;
    loop {
        let r = e.pass().await.unwrap();
        assert!(!r.locked_out);
        removed += r.removed;
        if !r.more {
            return removed;
        }
    }
}

fn small_batches() -> EnforcerOptions {
    // Small batches so that a test crosses several steps and passes.
    EnforcerOptions {
        batch: 7,
        scan: 16,
        max_steps: 3,
        ..EnforcerOptions::default()
    }
}

/// The archived row says what the live record said.
fn assert_same(row: &job_history::Model, live: &JobRecord) {
    assert_eq!(row.queue, live.queue);
    assert_eq!(row.state, live.state.as_str());
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&row.payload).unwrap(),
        live.payload
    );
    assert_eq!(
        row.result
            .as_deref()
            .map(|r| serde_json::from_str::<serde_json::Value>(r).unwrap()),
        live.result
    );
    let errors: Vec<drover_queue::AttemptError> = serde_json::from_str(&row.errors).unwrap();
    assert_eq!(errors, live.errors);
    assert_eq!(row.failed_reason, live.failed_reason);
    assert_eq!(row.attempts, i32::try_from(live.attempts).unwrap());
    assert_eq!(row.max_attempts, i32::try_from(live.max_attempts).unwrap());
    assert_eq!(row.request_id, live.request_id);
    assert_eq!(row.submitter_key_id, live.submitter);
    assert_eq!(row.worker, live.worker);
    assert_eq!(row.created_at.timestamp_millis(), live.created_at);
    assert_eq!(row.run_at.unwrap().timestamp_millis(), live.run_at);
    assert_eq!(
        row.started_at.map(|t| t.timestamp_millis()),
        live.started_at
    );
    assert_eq!(
        row.finished_at.map(|t| t.timestamp_millis()),
        live.finished_at
    );
    let options: serde_json::Value = serde_json::from_str(row.options.as_deref().unwrap()).unwrap();
    assert_eq!(
        options["backoff"],
        serde_json::to_value(live.backoff.as_ref().unwrap()).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_past_retention_move_to_the_archive_and_nothing_else_moves() {
    for t in TestDb::all().await {
        let s = setup();
        let db = database(&t).await;
        let q = s.queue("ret");
        // The completed ones were submitted by API keys 1 to 30: the archive keeps each.
        let mut jobs: Vec<_> = (0..30)
            .map(|n| TestJob::ok(n).with_submitter(i64::try_from(n).unwrap() + 1))
            .collect();
        jobs.extend((100..110).map(TestJob::failing));
        run_to_end(&q, &s.hub, jobs, 40).await;

        // Jobs that must stay: waiting, delayed, active.
        let holder = TestWorker::start(&q, &s.hub, 2);
        q.enqueue_many(vec![
            TestJob::holding(200, Duration::from_secs(60)),
            TestJob::holding(201, Duration::from_secs(60)),
        ])
        .await
        .unwrap();
        drover_tests::eventually_async(Duration::from_secs(10), "two active jobs", || async {
            (q.overview().await.unwrap().counts.active == 2).then_some(())
        })
        .await;
        // Both slots busy and no prefetch: the holder leases nothing more.
        let later = JobOptions {
            delay: Some(Duration::from_secs(HOUR)),
            ..JobOptions::default()
        };
        q.enqueue_many(
            (300..305)
                .map(TestJob::ok)
                .chain((400..403).map(|n| TestJob::ok(n).with_options(later.clone())))
                .collect(),
        )
        .await
        .unwrap();

        let completed = in_redis(&q, JobState::Completed).await;
        let failed = in_redis(&q, JobState::Failed).await;
        let untouched: std::collections::HashMap<JobState, BTreeMap<String, JobRecord>> = {
            let mut m = std::collections::HashMap::new();
            for st in [JobState::Waiting, JobState::Delayed, JobState::Active] {
                m.insert(st, in_redis(&q, st).await);
            }
            m
        };
        assert_eq!((completed.len(), failed.len()), (30, 10));
        assert_eq!(untouched[&JobState::Waiting].len(), 5);
        assert_eq!(untouched[&JobState::Delayed].len(), 3);
        assert_eq!(untouched[&JobState::Active].len(), 2);

        // Keep the 10 newest completed jobs, no failed one.
        let e = Enforcer::new(
            q.clone(),
            retention((HOUR, 10), (HOUR, 0), ArchiveMode::All),
            SqlArchive::new(db.clone()),
            small_batches(),
        )
        .unwrap();
        assert_eq!(enforce(&e).await, 30);

        let rows = archived(&db).await;
        let kept = in_redis(&q, JobState::Completed).await;
        assert_eq!(kept.len(), 10, "{:?}", t.engine());
        assert!(in_redis(&q, JobState::Failed).await.is_empty());
        assert_eq!(rows.len(), 30);
        // Counts match: every job is in exactly one place.
        let before: BTreeSet<&String> = completed.keys().chain(failed.keys()).collect();
        let after: BTreeSet<&String> = kept.keys().chain(rows.keys()).collect();
        assert_eq!(before, after);
        assert!(kept.keys().all(|id| !rows.contains_key(id)));
        // The kept ones are the newest.
        let newest_archived = rows
            .values()
            .filter(|r| r.state == "completed")
            .map(|r| r.finished_at.unwrap().timestamp_millis())
            .max()
            .unwrap();
        assert!(
            kept.values()
                .all(|j| j.finished_at.unwrap() >= newest_archived)
        );
        for (id, row) in &rows {
            let live = completed.get(id).or(failed.get(id)).unwrap();
            assert_same(row, live);
        }
        assert!(
            rows.values()
                .filter(|r| r.state == "completed")
                .all(|r| r.submitter_key_id.is_some_and(|k| (1..=30).contains(&k))),
            "the archive keeps the submitting key"
        );
        // Nothing else moved.
        for (st, jobs) in &untouched {
            let now = in_redis(&q, *st).await;
            assert_eq!(
                now.keys().collect::<Vec<_>>(),
                jobs.keys().collect::<Vec<_>>(),
                "{st}"
            );
        }
        // Each archived job is gone from Redis for good (hash too).
        for id in rows.keys() {
            assert!(q.get(id).await.unwrap().is_none());
        }
        drop(holder);
    }
}

fn own(completed: LimitsOverride) -> JobOptions {
    JobOptions {
        retention: Some(JobRetention {
            completed,
            failed: LimitsOverride::default(),
        }),
        ..JobOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_own_retention_wins_over_its_queues() {
    for t in TestDb::all().await {
        let s = setup();
        let db = database(&t).await;

        // The queue keeps everything; one job in the middle asks to leave at once.
        let q = s.queue("own-short");
        let now = own(LimitsOverride {
            max_age_ms: Some(0),
            max_count: None,
        });
        let mut jobs: Vec<_> = (0..20).map(TestJob::ok).collect();
        jobs.insert(10, TestJob::ok(99).with_options(now));
        run_to_end(&q, &s.hub, jobs, 21).await;
        let e = Enforcer::new(
            q.clone(),
            retention((HOUR, 10_000), (HOUR, 10_000), ArchiveMode::All),
            SqlArchive::new(db.clone()),
            small_batches(),
        )
        .unwrap();
        assert_eq!(enforce(&e).await, 1);
        let rows = archived(&db).await;
        assert_eq!(rows.len(), 1, "{:?}", t.engine());
        let row = rows.values().next().unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&row.payload).unwrap()["n"],
            99
        );
        let options: serde_json::Value =
            serde_json::from_str(row.options.as_deref().unwrap()).unwrap();
        assert_eq!(options["retention"]["completed"]["max_age_ms"], 0);
        assert_eq!(in_redis(&q, JobState::Completed).await.len(), 20);

        // The queue keeps nothing; the 20 jobs that finished first ask to stay an hour
        // and whatever the count (each limit left out would be the queue's).
        // They sit at the head of the set, where the walk must step over them (more of
        // them than one walk looks at) to reach the others.
        let q = s.queue("own-long");
        let stay = own(LimitsOverride {
            max_age_ms: Some(HOUR * 1000),
            max_count: Some(1_000_000),
        });
        run_to_end(
            &q,
            &s.hub,
            (0..20)
                .map(|n| TestJob::ok(n).with_options(stay.clone()))
                .collect(),
            20,
        )
        .await;
        run_to_end(&q, &s.hub, (20..45).map(TestJob::ok).collect(), 45).await;
        let e = Enforcer::new(
            q.clone(),
            retention((HOUR, 0), (HOUR, 0), ArchiveMode::All),
            SqlArchive::new(db.clone()),
            small_batches(),
        )
        .unwrap();
        assert_eq!(enforce(&e).await, 25);
        let kept = in_redis(&q, JobState::Completed).await;
        assert_eq!(kept.len(), 20);
        assert!(kept.values().all(|j| j.payload["n"].as_u64().unwrap() < 20));
        assert!(kept.values().all(|j| j.retention.is_some()));
        // Counted the other way: a job that asks to keep only 2 newer ones leaves once
        // 2 more finished, though the queue would keep it an hour.
        let q = s.queue("own-count");
        let few = own(LimitsOverride {
            max_age_ms: None,
            max_count: Some(2),
        });
        run_to_end(&q, &s.hub, vec![TestJob::ok(1).with_options(few)], 1).await;
        run_to_end(&q, &s.hub, vec![TestJob::ok(2)], 2).await;
        let e = Enforcer::new(
            q.clone(),
            retention((HOUR, 10_000), (HOUR, 10_000), ArchiveMode::All),
            SqlArchive::new(db.clone()),
            small_batches(),
        )
        .unwrap();
        assert_eq!(enforce(&e).await, 0, "one newer job: it stays");
        run_to_end(&q, &s.hub, vec![TestJob::ok(3)], 3).await;
        assert_eq!(enforce(&e).await, 1, "two newer jobs: it leaves");
        assert_eq!(in_redis(&q, JobState::Completed).await.len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_modes_choose_what_is_archived_before_removal() {
    for t in TestDb::all().await {
        let s = setup();
        for (name, mode, rows_expected) in [
            ("mode-all", ArchiveMode::All, (8, 4)),
            ("mode-failed", ArchiveMode::Failed, (0, 4)),
            ("mode-none", ArchiveMode::None, (0, 0)),
        ] {
            // A fresh database of the same engine per mode.
            let fresh = match t.engine() {
                drover_tests::Engine::Sqlite => TestDb::sqlite(),
                drover_tests::Engine::Postgres => TestDb::postgres().await.unwrap(),
            };
            let db = database(&fresh).await;
            let q = s.queue(name);
            let mut jobs: Vec<_> = (0..8).map(TestJob::ok).collect();
            jobs.extend((10..14).map(TestJob::failing));
            run_to_end(&q, &s.hub, jobs, 12).await;
            let e = Enforcer::new(
                q.clone(),
                retention((HOUR, 0), (HOUR, 0), mode),
                SqlArchive::new(db.clone()),
                EnforcerOptions::default(),
            )
            .unwrap();
            assert_eq!(enforce(&e).await, 12, "{mode}");
            let c = q.overview().await.unwrap().counts;
            assert_eq!((c.completed, c.failed), (0, 0), "{mode}");
            let rows = archived(&db).await;
            let by_state = |st: &str| rows.values().filter(|r| r.state == st).count();
            assert_eq!(
                (by_state("completed"), by_state("failed")),
                rows_expected,
                "{mode}"
            );
        }
    }
}

/// The real archive, but before it commits an admin retries one of the jobs: the job
/// is then no longer the record that was archived, and must stay in Redis.
struct RetryDuringArchive {
    inner: SqlArchive,
    queue: Queue,
    retried: std::sync::Mutex<Option<String>>,
}

impl ArchiveSink for RetryDuringArchive {
    async fn archive(&self, queue: &str, jobs: &[JobRecord]) -> Result<u64, ArchiveError> {
        let first = jobs.first().map(|j| j.id.clone());
        if let Some(id) = &first
            && self.retried.lock().unwrap().is_none()
        {
            let moved = self.queue.retry(id).await?;
            assert_eq!(moved, drover_queue::MoveOutcome::Moved);
            *self.retried.lock().unwrap() = first;
        }
        self.inner.archive(queue, jobs).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_retried_while_it_is_archived_stays_in_redis() {
    for t in TestDb::all().await {
        let s = setup();
        let db = database(&t).await;
        let q = s.queue("guard");
        run_to_end(&q, &s.hub, (0..5).map(TestJob::failing).collect(), 5).await;
        let sink = RetryDuringArchive {
            inner: SqlArchive::new(db.clone()),
            queue: q.clone(),
            retried: std::sync::Mutex::new(None),
        };
        let e = Enforcer::new(
            q.clone(),
            retention((HOUR, 0), (HOUR, 0), ArchiveMode::All),
            sink,
            EnforcerOptions::default(),
        )
        .unwrap();
        let r = e.step(JobState::Failed).await.unwrap();
        assert_eq!(
            (r.selected, r.archived, r.removed),
            (5, 5, 4),
            "{:?}",
            t.engine()
        );
        let c = q.overview().await.unwrap().counts;
        assert_eq!((c.failed, c.waiting), (0, 1));
        assert_eq!(archived(&db).await.len(), 5);
    }
}

/// An archive whose database has no `job_history` table: every write fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_leaves_redis_when_the_archive_fails() {
    for t in TestDb::all().await {
        let s = setup();
        // Not migrated: the insert fails.
        let db = drover_jobs::connect::database(t.url()).await.unwrap();
        let q = s.queue("broken");
        let mut jobs: Vec<_> = (0..6).map(TestJob::ok).collect();
        jobs.extend((10..13).map(TestJob::failing));
        run_to_end(&q, &s.hub, jobs, 9).await;
        let e = Enforcer::new(
            q.clone(),
            retention((0, 0), (0, 0), ArchiveMode::All),
            SqlArchive::new(db.clone()),
            EnforcerOptions::default(),
        )
        .unwrap();
        for st in [JobState::Completed, JobState::Failed] {
            let err = e.step(st).await.unwrap_err();
            assert!(
                matches!(err, drover_queue::retention::RetentionError::Archive(_)),
                "{err}"
            );
        }
        let c = q.overview().await.unwrap().counts;
        assert_eq!((c.completed, c.failed), (6, 3), "{:?}", t.engine());
        // Once the table exists, the same jobs go.
        drover_jobs::connect::migrate(&db).await.unwrap();
        assert_eq!(enforce(&e).await, 9);
        assert_eq!(job_history::Entity::find().count(&db).await.unwrap(), 9);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_enforcer_per_queue_at_a_time() {
    let s = setup();
    let t = TestDb::sqlite();
    let db = database(&t).await;
    let q = s.queue("lock");
    run_to_end(&q, &s.hub, (0..3).map(TestJob::ok).collect(), 3).await;
    let make = || {
        Enforcer::new(
            q.clone(),
            retention((HOUR, 0), (HOUR, 0), ArchiveMode::All),
            SqlArchive::new(db.clone()),
            EnforcerOptions::default(),
        )
        .unwrap()
    };
    let (a, b) = (make(), make());
    assert_eq!(a.step(JobState::Completed).await.unwrap().removed, 3);
    assert!(b.step(JobState::Completed).await.unwrap().locked_out);
    assert!(!a.step(JobState::Completed).await.unwrap().locked_out);
}

/// The hold deadline (Redis ms) of the queue's starts, if it has one.
async fn hold_deadline(s: &Setup, q: &Queue) -> Option<i64> {
    s.redis
        .query(redis::cmd("HGET").arg(&q.keys().flow).arg("archive_hold"))
        .await
        .unwrap()
}

/// Waits until job `id` completes; returns the ms it started at.
async fn started_once_completed(q: &Queue, id: &str) -> i64 {
    drover_tests::eventually_async(Duration::from_secs(10), "the job completes", || async {
        q.get(id)
            .await
            .unwrap()
            .filter(|j| j.state == JobState::Completed)
            .and_then(|j| j.started_at)
    })
    .await
}

/// Enqueues one job; returns its id.
async fn enqueue_one(q: &Queue, n: u64) -> String {
    q.enqueue_many(vec![TestJob::ok(n)]).await.unwrap()[0]
        .id
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_whose_archive_falls_behind_holds_its_starts_until_it_catches_up() {
    let s = setup();
    let t = TestDb::sqlite();
    let db = database(&t).await;
    let q = s.queue("behind");
    run_to_end(&q, &s.hub, (0..60).map(TestJob::ok).collect(), 60).await;
    let worker = TestWorker::start(&q, &s.hub, 2);
    // Two enforcers in turn: the first's lock lasts 100 ms, so the second may take the
    // queue over once the first is done with it.
    let enforcer = |hold_for, lock_ttl| {
        Enforcer::new(
            q.clone(),
            retention((HOUR, 5), (HOUR, 5), ArchiveMode::All),
            SqlArchive::new(db.clone()),
            EnforcerOptions {
                batch: 10,
                scan: 16,
                max_steps: 1,
                hold_backlog: 20,
                hold_for,
                lock_ttl,
                ..EnforcerOptions::default()
            },
        )
        .unwrap()
    };

    // A full step leaves 50 completed jobs, 45 past the count limit of 5: more than
    // the backlog of 20, so starts are held. A job enqueued now starts only when the
    // hold lapses, since nobody renews it.
    let lapsing = enforcer(Duration::from_millis(1500), Duration::from_millis(100));
    assert_eq!(lapsing.step(JobState::Completed).await.unwrap().removed, 10);
    let until = hold_deadline(&s, &q).await.expect("the queue is held");
    let started = started_once_completed(&q, &enqueue_one(&q, 1000).await).await;
    assert!(started >= until, "started at {started}, held until {until}");

    // Held again, for a minute this time; catching up releases the hold at once and
    // wakes the worker, long before the minute is out.
    let catching_up = enforcer(Duration::from_secs(60), Duration::from_secs(15));
    assert_eq!(
        catching_up.step(JobState::Completed).await.unwrap().removed,
        10
    );
    assert!(hold_deadline(&s, &q).await.is_some());
    let id = enqueue_one(&q, 1001).await;
    let before = chrono::Utc::now().timestamp_millis();
    assert_eq!(
        q.get(&id).await.unwrap().unwrap().state,
        JobState::Waiting,
        "a held queue started a job"
    );
    enforce(&catching_up).await;
    assert_eq!(hold_deadline(&s, &q).await, None, "caught up, still held");
    let started = started_once_completed(&q, &id).await;
    assert!(
        started >= before,
        "started at {started}, before the release at {before}"
    );
    // Within its retention now, with the job held back: the next pass leaves the 5
    // newest and sets no hold.
    enforce(&catching_up).await;
    assert_eq!(q.overview().await.unwrap().counts.completed, 5);
    assert_eq!(hold_deadline(&s, &q).await, None);
    worker.stop().await;
}
