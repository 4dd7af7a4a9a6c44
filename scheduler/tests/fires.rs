//! Real `drover-scheduler` processes over a real Redis and database: one job per fire
//! across replicas and a kill -9 of the leader, missed-fire policies after downtime and
//! across a Redis outage, and the overlap policy.
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

use drover_tests::each_target;
use std::time::Duration;

use chrono::{DateTime, DurationRound, Timelike, Utc};
use drover_entities::schedule_fire;
use drover_jobs::QueueName;
use drover_jobs::config::CommonConfig;
use drover_jobs::connect::Queues;
use drover_jobs::env::Env;
use drover_scheduler::spec::Draft;
use drover_scheduler::store;
use drover_tests::procs::Proc;
use drover_tests::{TestDb, TestRedis, eventually_async};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;

const T: Duration = Duration::from_secs(40);

struct Env2 {
    redis_url: String,
    ns: String,
    db: TestDb,
    conn: DatabaseConnection,
    queues: Queues,
}

async fn setup(redis_url: String) -> Env2 {
    let db = TestDb::sqlite();
    let ns = drover_tests::namespace();
    let common = CommonConfig::from_env(&Env::from_pairs(vec![
        ("REDIS_URL".to_owned(), redis_url.clone()),
        ("DROVER_REDIS_NAMESPACE".to_owned(), ns.clone()),
        ("DATABASE_URL".to_owned(), db.url().to_owned()),
        ("DROVER_REDIS_TIMEOUT_MS".to_owned(), "500".to_owned()),
    ]))
    .unwrap();
    let conn = drover_jobs::connect::database(db.url()).await.unwrap();
    drover_jobs::connect::migrate(&conn).await.unwrap();
    // The seeded defaults would fire at :05; these tests bring their own schedules.
    for s in store::list(&conn).await.unwrap() {
        store::delete(&conn, &s.name).await.unwrap();
    }
    let redis = drover_jobs::connect::redis(&common).unwrap();
    let queues = Queues::new(&redis, &common).unwrap();
    Env2 {
        redis_url,
        ns,
        db,
        conn,
        queues,
    }
}

impl Env2 {
    fn start(&self, grace_ms: u64) -> Proc {
        self.start_with_metrics(grace_ms, "off")
    }

    fn start_with_metrics(&self, grace_ms: u64, metrics_addr: &str) -> Proc {
        self.start_with(grace_ms, metrics_addr, 1000)
    }

    fn start_with(&self, grace_ms: u64, metrics_addr: &str, lock_ttl_ms: u64) -> Proc {
        Proc::start_exe(
            env!("CARGO_BIN_EXE_drover-scheduler"),
            &[
                ("REDIS_URL", self.redis_url.clone()),
                ("DROVER_REDIS_NAMESPACE", self.ns.clone()),
                ("DATABASE_URL", self.db.url().to_owned()),
                ("DROVER_SCHEDULER_TICK_MS", "100".to_owned()),
                ("DROVER_SCHEDULER_LOCK_TTL_MS", lock_ttl_ms.to_string()),
                ("DROVER_SCHEDULER_RELOAD_MS", "200".to_owned()),
                ("DROVER_SCHEDULER_GRACE_MS", grace_ms.to_string()),
                ("DROVER_SCHEDULER_METRICS_ADDR", metrics_addr.to_owned()),
                ("DROVER_REDIS_TIMEOUT_MS", "500".to_owned()),
                ("DROVER_REDIS_CONNECT_TIMEOUT_MS", "300".to_owned()),
                ("RUST_LOG", "warn".to_owned()),
            ],
        )
    }

    async fn schedule(&self, name: &str, cron: &str, missed: &str, overlap: &str) {
        let now = Utc::now();
        let spec = Draft {
            name: name.to_owned(),
            cron: cron.to_owned(),
            timezone: "UTC".to_owned(),
            queue: "cleanup".to_owned(),
            payload: json!({"dry_run": true}),
            missed_fire: missed.to_owned(),
            catch_up_limit: 100,
            overlap: overlap.to_owned(),
            enabled: true,
        }
        .check(now, now)
        .unwrap();
        assert!(
            store::create(&self.conn, store::row(&spec, now, now))
                .await
                .unwrap()
        );
    }

    async fn fires(&self, name: &str) -> Vec<schedule_fire::Model> {
        schedule_fire::Entity::find()
            .filter(schedule_fire::Column::ScheduleName.eq(name))
            .order_by_asc(schedule_fire::Column::ScheduledAt)
            .all(&self.conn)
            .await
            .unwrap()
    }

    async fn jobs(&self) -> u64 {
        let c = self
            .queues
            .get(QueueName::Cleanup)
            .overview()
            .await
            .unwrap()
            .counts;
        c.waiting + c.delayed + c.active + c.completed + c.failed
    }

    /// The pid of the leader, from its lease.
    async fn leader_pid(&self) -> Option<u32> {
        let redis =
            drover_queue::Redis::new(drover_queue::RedisConfig::new(&self.redis_url)).ok()?;
        let v: Option<String> = redis
            .query(redis::cmd("GET").arg(format!("{}:scheduler:leader", self.ns)))
            .await
            .ok()?;
        v?.split('-').next()?.parse().ok()
    }
}

/// A cron expression for exactly these seconds of one UTC minute.
fn at_seconds(times: &[DateTime<Utc>]) -> String {
    let secs: Vec<String> = times.iter().map(|t| t.second().to_string()).collect();
    let t = times[0];
    format!(
        "{} {} {} {} {} *",
        secs.join(","),
        t.minute(),
        t.hour(),
        t.format("%-d"),
        t.format("%-m")
    )
}

/// `n` whole seconds starting `lead` seconds from now, all in one minute.
async fn seconds_ahead(lead: i64, n: i64) -> Vec<DateTime<Utc>> {
    eventually_async(T, "a minute with room for the fires", || async {
        let base = Utc::now()
            .duration_trunc(chrono::Duration::seconds(1))
            .unwrap();
        let first = base + chrono::Duration::seconds(lead);
        let last = first + chrono::Duration::seconds(n - 1);
        (first.minute() == last.minute()).then(|| {
            (0..n)
                .map(|i| first + chrono::Duration::seconds(i))
                .collect()
        })
    })
    .await
}

async fn wait_until(t: DateTime<Utc>) {
    eventually_async(T, &format!("the clock to pass {t}"), || async {
        (Utc::now() > t).then_some(())
    })
    .await;
}

each_target! {
#[tokio::test]
async fn three_replicas_make_one_job_per_second_and_survive_a_kill_9_of_the_leader(target) {
    let env = setup(drover_tests::url_of(target)).await;
    env.schedule("every-second", "* * * * * *", "all", "allow")
        .await;
    // A short grace: the fires of the failover gap count as missed, and `all` replays them.
    let mut procs: Vec<Proc> = (0..3).map(|_| env.start(300)).collect();
    eventually_async(T, "ten fires", || async {
        (env.fires("every-second").await.len() >= 10).then_some(())
    })
    .await;
    let pid = eventually_async(T, "a leader", || env.leader_pid()).await;
    let i = procs
        .iter()
        .position(|p| p.pid() == pid)
        .expect("the leader is one of ours");
    let killed_at = Utc::now();
    procs[i].kill9();
    // Fires continue after the kill, taken over by another replica.
    let first_after = eventually_async(T, "a fire enqueued after the kill", || async {
        env.fires("every-second")
            .await
            .into_iter()
            .filter_map(|f| f.enqueued_at)
            .find(|e| *e > killed_at + chrono::Duration::milliseconds(100))
    })
    .await;
    assert!(
        first_after - killed_at < chrono::Duration::seconds(4),
        "takeover took {}",
        first_after - killed_at
    );
    let until = killed_at + chrono::Duration::seconds(4);
    eventually_async(T, "fires after the takeover", || async {
        env.fires("every-second")
            .await
            .iter()
            .any(|f| f.scheduled_at > until)
            .then_some(())
    })
    .await;
    for p in &mut procs {
        p.terminate(Duration::from_secs(10));
    }
    let fires = env.fires("every-second").await;
    // Every second from the first to the last, once, each with a job of its own.
    for pair in fires.windows(2) {
        assert_eq!(
            pair[1].scheduled_at - pair[0].scheduled_at,
            chrono::Duration::seconds(1),
            "a gap or a repeat between {} and {}",
            pair[0].scheduled_at,
            pair[1].scheduled_at
        );
    }
    let mut ids: Vec<String> = fires
        .iter()
        .map(|f| {
            assert_eq!(f.status, "enqueued", "{f:?}");
            f.job_id.clone().unwrap()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), fires.len(), "one job per fire");
    assert_eq!(
        env.jobs().await,
        fires.len() as u64,
        "no job without a fire"
    );
    assert!(fires.iter().any(|f| f.scheduled_at > killed_at));
}
}

each_target! {
#[tokio::test]
async fn after_downtime_across_three_fires_skip_runs_none_once_one_all_three(target) {
    let env = setup(drover_tests::url_of(target)).await;
    let times = seconds_ahead(2, 3).await;
    let cron = at_seconds(&times);
    for (name, policy) in [("p-skip", "skip"), ("p-once", "once"), ("p-all", "all")] {
        env.schedule(name, &cron, policy, "allow").await;
    }
    // No scheduler runs across the three fire times.
    wait_until(times[2] + chrono::Duration::milliseconds(1500)).await;
    let mut p = env.start(1000);
    eventually_async(T, "each fire decided", || async {
        let mut n = 0;
        for name in ["p-skip", "p-once", "p-all"] {
            n += env.fires(name).await.len();
        }
        (n == 9).then_some(())
    })
    .await;
    p.terminate(Duration::from_secs(10));
    let enqueued = |f: &[schedule_fire::Model]| {
        f.iter()
            .filter(|x| x.status == "enqueued")
            .map(|x| x.scheduled_at)
            .collect::<Vec<_>>()
    };
    let skip = env.fires("p-skip").await;
    assert_eq!(enqueued(&skip), Vec::<DateTime<Utc>>::new());
    assert!(
        skip.iter()
            .all(|f| f.reason.as_deref().unwrap().starts_with("missed"))
    );
    assert_eq!(enqueued(&env.fires("p-once").await), [times[2]]);
    assert_eq!(enqueued(&env.fires("p-all").await), times);
    assert_eq!(env.jobs().await, 4);
}
}

#[tokio::test]
async fn a_fire_during_a_redis_outage_runs_once_when_redis_returns() {
    let mut redis = TestRedis::start();
    let env = setup(redis.url()).await;
    let mut p = env.start(1000);
    eventually_async(T, "a leader", || env.leader_pid()).await;
    let times = seconds_ahead(3, 1).await;
    let cron = at_seconds(&times);
    env.schedule("r-once", &cron, "once", "allow").await;
    env.schedule("r-all", &cron, "all", "allow").await;
    wait_until(times[0] - chrono::Duration::milliseconds(1500)).await;
    redis.kill();
    wait_until(times[0] + chrono::Duration::milliseconds(1500)).await;
    assert!(env.fires("r-once").await.is_empty(), "fired without Redis");
    redis.restart();
    eventually_async(T, "both fires after Redis returned", || async {
        (env.fires("r-once").await.len() == 1 && env.fires("r-all").await.len() == 1).then_some(())
    })
    .await;
    // Another catch-up pass has nothing left to do.
    eventually_async(T, "a leader again", || env.leader_pid()).await;
    p.terminate(Duration::from_secs(10));
    for name in ["r-once", "r-all"] {
        let f = env.fires(name).await;
        assert_eq!(f.len(), 1, "{name}: {f:?}");
        assert_eq!(f[0].status, "enqueued", "{name}");
        assert_eq!(f[0].scheduled_at, times[0]);
        let job = env
            .queues
            .get(QueueName::Cleanup)
            .get(f[0].job_id.as_deref().unwrap())
            .await
            .unwrap();
        assert!(job.is_some(), "{name}: its job is in Redis");
    }
    assert_eq!(env.jobs().await, 2);
}

each_target! {
#[tokio::test]
async fn overlap_skip_records_a_fire_as_skipped_while_the_previous_job_is_unfinished(target) {
    let env = setup(drover_tests::url_of(target)).await;
    env.schedule("no-overlap", "* * * * * *", "skip", "skip")
        .await;
    let mut p = env.start(60_000);
    // No worker runs: the first fire's job stays waiting.
    eventually_async(T, "four fires", || async {
        (env.fires("no-overlap").await.len() >= 4).then_some(())
    })
    .await;
    p.terminate(Duration::from_secs(10));
    let fires = env.fires("no-overlap").await;
    assert_eq!(fires[0].status, "enqueued");
    let first_job = fires[0].job_id.clone().unwrap();
    for f in &fires[1..] {
        assert_eq!(f.status, "skipped", "{f:?}");
        let reason = f.reason.as_deref().unwrap();
        assert!(
            reason.starts_with("overlap") && reason.contains(&first_job),
            "{reason}"
        );
    }
    assert_eq!(env.jobs().await, 1);
}
}

/// The sum of the series `name` whose labels include `label`, in a Prometheus scrape.
fn series(text: &str, name: &str, label: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) || !rest.contains(label) {
            continue;
        }
        let v: f64 = rest.rsplit(' ').next()?.parse().ok()?;
        *found.get_or_insert(0.0) += v;
    }
    found
}

each_target! {
#[tokio::test]
async fn the_metrics_count_the_fires_their_lateness_and_the_leader(target) {
    let env = setup(drover_tests::url_of(target)).await;
    let addr = drover_tests::free_addr();
    let times = seconds_ahead(2, 3).await;
    env.schedule("metered", &at_seconds(&times), "all", "allow")
        .await;
    let mut p = env.start_with_metrics(60_000, &addr.to_string());
    eventually_async(T, "three fires", || async {
        let n = env
            .fires("metered")
            .await
            .iter()
            .filter(|f| f.status == "enqueued")
            .count();
        (n == 3).then_some(())
    })
    .await;
    let label = "schedule=\"metered\"";
    let text = eventually_async(T, "the scrape to count three fires", || async {
        let text = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (series(&text, "drover_schedule_fires_total", label) == Some(3.0)).then_some(text)
    })
    .await;
    assert_eq!(
        series(&text, "drover_schedule_lateness_seconds_count", label),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        series(&text, "drover_scheduler_leader", ""),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series(&text, "drover_schedule_fires_skipped_total", label),
        None,
        "{text}"
    );
    let ready = reqwest::get(format!("http://{addr}/ready")).await.unwrap();
    assert_eq!(ready.status(), 200);
    p.terminate(Duration::from_secs(10));
    assert_eq!(env.jobs().await, 3);
}
}

each_target! {
#[tokio::test]
async fn sigterm_to_the_leader_hands_over_at_once_and_the_next_fire_is_on_time(target) {
    let env = setup(drover_tests::url_of(target)).await;
    env.schedule("handover", "* * * * * *", "all", "allow")
        .await;
    // A 20 s lease: a takeover that waited for the lease to expire would miss many
    // fires, so only the leader's release at SIGTERM can pass.
    let mut procs: Vec<Proc> = (0..2)
        .map(|_| env.start_with(1000, "off", 20_000))
        .collect();
    eventually_async(T, "three fires", || async {
        (env.fires("handover").await.len() >= 3).then_some(())
    })
    .await;
    let pid = eventually_async(T, "a leader", || env.leader_pid()).await;
    let i = procs
        .iter()
        .position(|p| p.pid() == pid)
        .expect("the leader is one of ours");
    procs[i].terminate(Duration::from_secs(10));
    let exited = Utc::now();
    let other = procs[1 - i].pid();
    let new_leader = eventually_async(Duration::from_secs(2), "the other replica to lead", || {
        env.leader_pid()
    })
    .await;
    assert_eq!(new_leader, other);
    // The first second due after the exit fires, on time (within the grace).
    let next_due =
        exited.duration_trunc(chrono::Duration::seconds(1)).unwrap() + chrono::Duration::seconds(1);
    let fire = eventually_async(T, "the next due fire", || async {
        env.fires("handover")
            .await
            .into_iter()
            .find(|f| f.scheduled_at == next_due && f.enqueued_at.is_some())
    })
    .await;
    let late = fire.enqueued_at.unwrap() - fire.scheduled_at;
    assert!(
        late < chrono::Duration::milliseconds(500),
        "the first fire after the handover was {late} late"
    );
    eventually_async(T, "a few more fires", || async {
        env.fires("handover")
            .await
            .iter()
            .any(|f| f.scheduled_at > next_due + chrono::Duration::seconds(2))
            .then_some(())
    })
    .await;
    procs[1 - i].terminate(Duration::from_secs(10));
    let fires = env.fires("handover").await;
    // No second was skipped or fired twice across the handover.
    for pair in fires.windows(2) {
        assert_eq!(
            pair[1].scheduled_at - pair[0].scheduled_at,
            chrono::Duration::seconds(1),
            "a gap or a repeat between {} and {}",
            pair[0].scheduled_at,
            pair[1].scheduled_at
        );
        assert_eq!(pair[1].status, "enqueued", "{:?}", pair[1]);
    }
}
}
