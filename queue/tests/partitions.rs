#![allow(clippy::unwrap_used)] // Tests fail by panicking.
//! Partitions and lost replies: a worker reaches Redis through a proxy that the test
//! pauses, cuts or slows down, while the test watches through a connection of its own.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use common::*;
use drover_queue::queue::now_ms;
use drover_queue::worker::{JobContext, WakeHub, WorkerOptions};
use drover_queue::{EventType, JobOptions, JobState, NewJob, Queue, Redis, RedisConfig};
use drover_tests::{Proxy, eventually_async};
use tokio::sync::Notify;

const T: Duration = Duration::from_secs(20);

/// The same queue twice: once through `proxy` (for the worker), once direct (for the test).
fn queues(proxy: &Proxy) -> (Queue, Queue) {
    init_logs();
    let ns = drover_tests::namespace();
    let mut cfg = RedisConfig::new(proxy.url());
    cfg.connect_timeout = Duration::from_millis(500);
    let through = Redis::new(cfg).unwrap();
    let direct = Redis::new(RedisConfig::new(drover_tests::shared_redis_url())).unwrap();
    (
        Queue::new(through, &ns, "test", fast_defaults()).unwrap(),
        Queue::new(direct, &ns, "test", fast_defaults()).unwrap(),
    )
}

fn job() -> NewJob {
    NewJob::new(&TestJob {
        n: 1,
        ..Default::default()
    })
    .unwrap()
}

/// Options for a worker behind the proxy: short leases, and no rescue of its own (the
/// test rescues through its direct connection, when it wants to).
fn partition_options(lease: Duration) -> WorkerOptions {
    WorkerOptions {
        lease,
        rescue_interval: Duration::from_secs(3600),
        ..fast_options(1)
    }
}

#[tokio::test]
async fn a_partitioned_worker_hears_its_lease_is_lost_and_its_late_outcome_is_refused() {
    let proxy = Proxy::for_redis(&drover_tests::shared_redis_url()).await;
    let (through, direct) = queues(&proxy);
    let hub = WakeHub::start(through.redis().clone(), &ns_of(&through));
    let started = Arc::new(Notify::new());
    let go = Arc::new(Notify::new());
    let lost_at_ms = Arc::new(AtomicI64::new(0));
    let (s, g, l) = (started.clone(), go.clone(), lost_at_ms.clone());
    let handler = Handler::new(move |_job: TestJob, ctx: JobContext, _w| {
        let (s, g, l) = (s.clone(), g.clone(), l.clone());
        Box::pin(async move {
            if ctx.attempt() > 1 {
                return Ok(serde_json::json!({ "attempt": ctx.attempt() }));
            }
            s.notify_one();
            tokio::time::timeout(T, ctx.lease_lost().cancelled())
                .await
                .expect("the lease-lost signal fires");
            l.store(now_ms(), Ordering::SeqCst);
            assert!(ctx.is_lease_lost());
            // A handler that ignores the signal and finishes late anyway.
            g.notified().await;
            Ok(serde_json::json!({ "attempt": ctx.attempt(), "late": true }))
        })
    });
    let worker = spawn_worker(
        &through,
        &hub,
        partition_options(Duration::from_millis(1000)),
        handler,
    );
    let e = direct.enqueue(job()).await.unwrap();
    tokio::time::timeout(T, started.notified()).await.unwrap();

    // The partition: nothing passes between the worker and Redis.
    proxy.pause();
    let lost_at = eventually_async(T, "the handler to see its lease lost", || async {
        let at = lost_at_ms.load(Ordering::SeqCst);
        (at > 0).then_some(at)
    })
    .await;
    // It heard before the lease ran out in Redis, so before anyone could take the job.
    let expiry: f64 = direct
        .redis()
        .query(redis::cmd("ZSCORE").arg(&direct.keys().active).arg(&e.id))
        .await
        .unwrap();
    assert!(
        (lost_at as f64) < expiry,
        "signal at {lost_at}, lease expiry {expiry}"
    );

    // Another worker's rescue takes the job once the lease has run out.
    eventually_async(T, "the rescue of the expired lease", || async {
        (direct.rescue(10).await.unwrap().0 == 1).then_some(())
    })
    .await;
    // The partition heals; the first attempt finishes late and is refused.
    proxy.resume();
    go.notify_one();
    let rec = wait_finished(&direct, &e.id, T).await;
    assert_eq!(rec.state, JobState::Completed);
    assert_eq!(
        rec.result,
        Some(serde_json::json!({ "attempt": 2 })),
        "the late outcome of attempt 1 was refused"
    );
    assert_eq!(rec.attempts, 2);
    worker.stop().await;
}

#[tokio::test]
async fn a_renewal_that_finds_the_job_taken_fires_the_signal() {
    let proxy = Proxy::for_redis(&drover_tests::shared_redis_url()).await;
    let (through, direct) = queues(&proxy);
    let hub = WakeHub::start(through.redis().clone(), &ns_of(&through));
    let started = Arc::new(Notify::new());
    let fired = Arc::new(AtomicBool::new(false));
    let (s, f) = (started.clone(), fired.clone());
    let handler = Handler::new(move |_job: TestJob, ctx: JobContext, _w| {
        let (s, f) = (s.clone(), f.clone());
        Box::pin(async move {
            s.notify_one();
            let _ = tokio::time::timeout(T, ctx.lease_lost().cancelled()).await;
            f.store(ctx.is_lease_lost(), Ordering::SeqCst);
            Ok(serde_json::json!({ "late": true }))
        })
    });
    let worker = spawn_worker(
        &through,
        &hub,
        partition_options(Duration::from_millis(1500)),
        handler,
    );
    let e = direct.enqueue(job()).await.unwrap();
    tokio::time::timeout(T, started.notified()).await.unwrap();
    // Someone else takes the job under the running handler, as a rescue and a new
    // lease elsewhere would: its lease token changes.
    let _: i64 = direct
        .redis()
        .query(
            redis::cmd("HINCRBY")
                .arg(direct.keys().job(&e.id))
                .arg("lease")
                .arg(1),
        )
        .await
        .unwrap();
    eventually_async(T, "the handler to see its lease taken", || async {
        fired.load(Ordering::SeqCst).then_some(())
    })
    .await;
    worker.stop().await;
}

/// A `max_attempts = 1` job, and the worker's fetch of it set to lose its reply.
async fn job_with_a_lost_fetch(direct: &Queue, proxy: &Proxy, then_pause: bool) -> String {
    let e = direct
        .enqueue(job().with_options(JobOptions {
            max_attempts: Some(1),
            ..Default::default()
        }))
        .await
        .unwrap();
    // The fetch script is the only worker call that names the paused key.
    let marker = direct.keys().paused.clone();
    if then_pause {
        proxy.lose_reply_then_pause(marker.as_bytes());
    } else {
        proxy.lose_reply_to(marker.as_bytes());
    }
    e.id
}

fn assert_ran_once(rec: &drover_queue::JobRecord) {
    assert_eq!(
        rec.state,
        JobState::Completed,
        "errors: {:?}, reason: {:?}",
        rec.errors,
        rec.failed_reason
    );
    assert_eq!(rec.attempts, 1, "the lease nobody ran cost nothing");
    assert!(rec.errors.is_empty(), "{:?}", rec.errors);
}

#[tokio::test]
async fn a_lost_fetch_reply_costs_no_attempt_and_the_next_fetch_hands_it_back() {
    let proxy = Proxy::for_redis(&drover_tests::shared_redis_url()).await;
    let (through, direct) = queues(&proxy);
    let hub = WakeHub::start(direct.redis().clone(), &ns_of(&through));
    let id = job_with_a_lost_fetch(&direct, &proxy, false).await;
    // A lease far longer than the test's deadline: no rescue can be what brings it back.
    let opts = WorkerOptions {
        lease: Duration::from_secs(120),
        ..fast_options(1)
    };
    let worker = spawn_worker(&through, &hub, opts, obedient());
    let rec = wait_finished(&direct, &id, T).await;
    assert_eq!(proxy.lost_replies(), 1, "a fetch reply was lost");
    assert_ran_once(&rec);
    let events = direct.events_after("0", 100).await.unwrap();
    assert!(
        events
            .iter()
            .any(|ev| ev.kind == EventType::JobQueued && ev.data["reason"] == "reply_lost"),
        "the worker's next fetch handed the lost batch back: {events:?}"
    );
    worker.stop().await;
}

#[tokio::test]
async fn a_lost_fetch_reply_of_a_worker_that_never_returns_costs_no_attempt() {
    let proxy = Proxy::for_redis(&drover_tests::shared_redis_url()).await;
    let (through, direct) = queues(&proxy);
    let hub = WakeHub::start(direct.redis().clone(), &ns_of(&through));
    let id = job_with_a_lost_fetch(&direct, &proxy, true).await;
    let opts = || WorkerOptions {
        lease: Duration::from_millis(500),
        rescue_interval: Duration::from_millis(100),
        ..fast_options(1)
    };
    let cut_off = spawn_worker(&through, &hub, opts(), obedient());
    eventually_async(T, "the fetch reply to be lost", || async {
        (proxy.lost_replies() == 1).then_some(())
    })
    .await;
    // The cut-off worker never confirms its batch; another one rescues it.
    let other = spawn_worker(&direct, &hub, opts(), obedient());
    let rec = wait_finished(&direct, &id, T).await;
    assert_ran_once(&rec);
    let events = direct.events_after("0", 100).await.unwrap();
    assert!(
        events
            .iter()
            .any(|ev| ev.kind == EventType::JobStalled && ev.data["started"] == false),
        "the unconfirmed lease was rescued uncounted: {events:?}"
    );
    // Back again, the first worker's next fetch finds its lost batch run elsewhere.
    proxy.resume();
    other.stop().await;
    cut_off.stop().await;
    let rec = direct.get(&id).await.unwrap().unwrap();
    assert_ran_once(&rec);
}

#[tokio::test]
async fn a_slow_admin_read_does_not_delay_a_lease_renewal() {
    let proxy = Proxy::for_redis(&drover_tests::shared_redis_url()).await;
    let ns = drover_tests::namespace();
    // One handle for the worker and the admin reads, as in a process that runs both,
    // with one general lane: only the control lane keeps them apart.
    let mut cfg = RedisConfig::new(proxy.url());
    cfg.pool_size = 1;
    cfg.response_timeout = Duration::from_secs(60);
    let through = Redis::new(cfg).unwrap();
    let direct = Redis::new(RedisConfig::new(drover_tests::shared_redis_url())).unwrap();
    let work = Queue::new(through.clone(), &ns, "work", fast_defaults()).unwrap();
    let big = Queue::new(through.clone(), &ns, "big", fast_defaults()).unwrap();
    let work_direct = Queue::new(direct.clone(), &ns, "work", fast_defaults()).unwrap();
    let big_direct = Queue::new(direct.clone(), &ns, "big", fast_defaults()).unwrap();
    // A thousand jobs of 20 kB each: a 20 MB page.
    let pad = "x".repeat(20_000);
    let jobs = (0..1000)
        .map(|n| NewJob::new(&serde_json::json!({ "n": n, "pad": pad })).unwrap())
        .collect();
    big_direct.enqueue_many(jobs).await.unwrap();

    let hub = WakeHub::start(direct.clone(), &ns);
    let started = Arc::new(Notify::new());
    let go = Arc::new(Notify::new());
    let lost = Arc::new(AtomicBool::new(false));
    let (s, g, l) = (started.clone(), go.clone(), lost.clone());
    let handler = Handler::new(move |_job: TestJob, ctx: JobContext, _w| {
        let (s, g, l) = (s.clone(), g.clone(), l.clone());
        Box::pin(async move {
            s.notify_one();
            tokio::select! {
                () = ctx.lease_lost().cancelled() => l.store(true, Ordering::SeqCst),
                () = g.notified() => {}
            }
            Ok(serde_json::json!({ "done": true }))
        })
    });
    let lease = Duration::from_millis(1000);
    let worker = spawn_worker(&work, &hub, partition_options(lease), handler);
    let e = work_direct.enqueue(job()).await.unwrap();
    tokio::time::timeout(T, started.notified()).await.unwrap();

    // The link is slow: the page takes seconds to come through, several leases long.
    proxy.throttle(Some(5_000_000));
    let t0 = std::time::Instant::now();
    let page = big.list(JobState::Waiting, None, 1000).await.unwrap();
    let took = t0.elapsed();
    proxy.throttle(None);
    assert_eq!(page.jobs.len(), 1000);
    assert!(
        took > lease * 2,
        "the read must outlast the lease for this test to mean anything ({took:?})"
    );
    go.notify_one();
    let rec = wait_finished(&work_direct, &e.id, T).await;
    assert!(
        !lost.load(Ordering::SeqCst),
        "the renewals waited behind the admin read"
    );
    assert_eq!(rec.state, JobState::Completed);
    assert_eq!(rec.attempts, 1);
    worker.stop().await;
}

#[tokio::test]
async fn a_slow_read_holds_up_one_general_lane_and_the_others_go_around_it() {
    let proxy = Proxy::for_redis(&drover_tests::shared_redis_url()).await;
    let ns = drover_tests::namespace();
    let mut cfg = RedisConfig::new(proxy.url());
    cfg.pool_size = 2;
    cfg.response_timeout = Duration::from_secs(60);
    let through = Redis::new(cfg).unwrap();
    let direct = Redis::new(RedisConfig::new(drover_tests::shared_redis_url())).unwrap();
    let big = Queue::new(through.clone(), &ns, "big", fast_defaults()).unwrap();
    let pad = "x".repeat(20_000);
    let jobs = (0..500)
        .map(|n| NewJob::new(&serde_json::json!({ "n": n, "pad": pad })).unwrap())
        .collect();
    let ids = Queue::new(direct, &ns, "big", fast_defaults())
        .unwrap()
        .enqueue_many(jobs)
        .await
        .unwrap();
    through.ping().await.unwrap();
    assert_eq!(
        through.open_general_lanes(),
        1,
        "an idle handle uses one connection"
    );

    proxy.throttle(Some(2_000_000));
    let b = big.clone();
    let slow = tokio::spawn(async move { b.list(JobState::Waiting, None, 500).await });
    eventually_async(T, "the page to be on its way", || async {
        (through.busy_general_lanes() == 1).then_some(())
    })
    .await;
    // Meanwhile other calls take the other lane and are answered at once.
    for id in ids.iter().take(5) {
        assert!(big.get(&id.id).await.unwrap().is_some());
    }
    assert!(
        !slow.is_finished(),
        "the other calls did not wait for the page"
    );
    assert_eq!(through.open_general_lanes(), 2);
    proxy.throttle(None);
    assert_eq!(slow.await.unwrap().unwrap().jobs.len(), 500);
}
