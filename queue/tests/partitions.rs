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

#[tokio::test]
async fn a_lost_fetch_reply_costs_no_attempt() {
    let proxy = Proxy::for_redis(&drover_tests::shared_redis_url()).await;
    let (through, direct) = queues(&proxy);
    let hub = WakeHub::start(direct.redis().clone(), &ns_of(&through));
    let e = direct
        .enqueue(job().with_options(JobOptions {
            max_attempts: Some(1),
            ..Default::default()
        }))
        .await
        .unwrap();
    // The fetch script is the only worker call that names the paused key: its reply is lost.
    proxy.lose_reply_to(direct.keys().paused.as_bytes());
    let opts = WorkerOptions {
        lease: Duration::from_millis(500),
        rescue_interval: Duration::from_millis(100),
        ..fast_options(1)
    };
    let worker = spawn_worker(&through, &hub, opts, obedient());
    let rec = wait_finished(&direct, &e.id, T).await;
    assert_eq!(proxy.lost_replies(), 1, "a fetch reply was lost");
    assert_eq!(
        rec.state,
        JobState::Completed,
        "errors: {:?}, reason: {:?}",
        rec.errors,
        rec.failed_reason
    );
    assert_eq!(rec.attempts, 1, "the lease nobody ran cost nothing");
    assert!(rec.errors.is_empty(), "{:?}", rec.errors);
    let events = direct.events_after("0", 100).await.unwrap();
    assert!(
        events
            .iter()
            .any(|ev| ev.kind == EventType::JobStalled && ev.data["started"] == false),
        "the unstarted lease was rescued"
    );
    worker.stop().await;
}
