#![allow(clippy::unwrap_used)] // Tests fail by panicking.
//! Leases: a job whose worker vanished runs again; a hung one cannot finish a newer attempt.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use apalis::prelude::WorkerContext;
use common::*;
use drover_queue::worker::{JobContext, WakeHub};
use drover_queue::{EventType, JobOptions, JobState, NewJob};
use drover_tests::each_target;
use tokio::sync::Notify;

const T: Duration = Duration::from_secs(20);

fn job() -> NewJob {
    NewJob::new(&TestJob {
        n: 1,
        ..Default::default()
    })
    .unwrap()
}

each_target! {
#[tokio::test]
async fn a_job_whose_worker_vanished_is_rescued_and_runs_again(target) {
    let (redis, queue) = shared_queue(target);
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let started = Arc::new(Notify::new());
    let s = started.clone();
    // This worker starts the job and never finishes it.
    let stuck = Handler::new(move |_job: TestJob, _ctx: JobContext, _w| {
        s.notify_one();
        Box::pin(async move {
            std::future::pending::<()>().await;
            Ok(serde_json::Value::Null)
        })
    });
    let mut opts = fast_options(1);
    opts.lease = Duration::from_millis(600);
    let lost = spawn_worker(&queue, &hub, opts.clone(), stuck);
    let e = queue.enqueue(job()).await.unwrap();
    tokio::time::timeout(T, started.notified()).await.unwrap();
    // The worker dies without a word: its lease is no longer renewed.
    lost.abort();

    let rescuer = spawn_worker(&queue, &hub, opts, obedient());
    let rec = wait_finished(&queue, &e.id, T).await;
    assert_eq!(rec.state, JobState::Completed);
    assert_eq!(rec.attempts, 2, "the lost attempt counts");
    assert!(
        rec.errors[0].error.starts_with("stalled"),
        "{}",
        rec.errors[0].error
    );
    // The stalled attempt names the worker that died, not the one that finished.
    assert!(rec.errors[0].worker.is_some(), "{:?}", rec.errors[0]);
    assert!(rec.worker.is_some());
    assert_ne!(rec.errors[0].worker, rec.worker);
    let events = queue.events_after("0", 100).await.unwrap();
    assert!(events.iter().any(|e| e.kind == EventType::JobStalled));
    rescuer.stop().await;
}
}

each_target! {
#[tokio::test]
async fn a_job_that_keeps_killing_its_worker_fails_as_stalled(target) {
    let (redis, queue) = shared_queue(target);
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let mut opts = fast_options(1);
    opts.lease = Duration::from_millis(400);
    let e = queue
        .enqueue(job().with_options(JobOptions {
            max_attempts: Some(2),
            ..Default::default()
        }))
        .await
        .unwrap();
    for _ in 0..2 {
        let started = Arc::new(Notify::new());
        let s = started.clone();
        let stuck = Handler::new(move |_job: TestJob, _ctx: JobContext, _w| {
            s.notify_one();
            Box::pin(async move {
                std::future::pending::<()>().await;
                Ok(serde_json::Value::Null)
            })
        });
        let w = spawn_worker(&queue, &hub, opts.clone(), stuck);
        tokio::time::timeout(T, started.notified()).await.unwrap();
        w.abort();
    }
    // A third worker only rescues: the job must not reach it.
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let h = Handler::new(move |_job: TestJob, _ctx: JobContext, _w| {
        r.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(serde_json::Value::Null) })
    });
    let w = spawn_worker(&queue, &hub, opts, h);
    let rec = wait_finished(&queue, &e.id, T).await;
    assert_eq!(rec.state, JobState::Failed);
    assert_eq!(rec.failed_reason.as_deref(), Some("stalled"));
    assert_eq!(rec.errors.len(), 2);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    w.stop().await;
}
}

each_target! {
#[tokio::test]
async fn a_long_job_keeps_its_lease_while_it_runs(target) {
    let (redis, queue) = shared_queue(target);
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let mut opts = fast_options(1);
    opts.lease = Duration::from_millis(300);
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let h = Handler::new(move |_job: TestJob, _ctx: JobContext, _w| {
        r.fetch_add(1, Ordering::SeqCst);
        // Runs for several lease lengths; renewal must keep it ours.
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            Ok(serde_json::Value::Null)
        })
    });
    let w = spawn_worker(&queue, &hub, opts.clone(), h);
    let e = queue.enqueue(job()).await.unwrap();
    drover_tests::eventually_async(T, "the job to start", || async {
        (runs.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    // A second worker rescues expired leases all along.
    let other = spawn_worker(&queue, &hub, opts, obedient());
    let rec = wait_finished(&queue, &e.id, T).await;
    assert_eq!(rec.state, JobState::Completed);
    assert_eq!(rec.attempts, 1);
    assert!(rec.errors.is_empty());
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    w.stop().await;
    other.stop().await;
}
}

each_target! {
#[tokio::test]
async fn a_graceful_stop_hands_back_what_it_did_not_start(target) {
    let (redis, queue) = shared_queue(target);
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let mut opts = fast_options(1);
    opts.prefetch = 5;
    let started = Arc::new(Notify::new());
    let s = started.clone();
    // The first job runs until its worker is told to stop, then finishes.
    let h = Handler::new(move |_job: TestJob, _ctx: JobContext, w: WorkerContext| {
        let s = s.clone();
        Box::pin(async move {
            s.notify_one();
            drover_tests::eventually_async(T, "the worker to be told to stop", || async {
                w.is_shutting_down().then_some(())
            })
            .await;
            Ok(serde_json::Value::Null)
        })
    });
    let ids = queue
        .enqueue_many((0..6).map(|_| job()).collect())
        .await
        .unwrap();
    let w = spawn_worker(&queue, &hub, opts, h);
    tokio::time::timeout(T, started.notified()).await.unwrap();
    drover_tests::eventually_async(T, "six jobs leased", || async {
        (queue.overview().await.unwrap().counts.active == 6).then_some(())
    })
    .await;
    w.stop().await;
    let o = queue.overview().await.unwrap();
    assert_eq!(
        (o.counts.completed, o.counts.active, o.counts.waiting),
        (1, 0, 5)
    );
    for e in &ids {
        let j = queue.get(&e.id).await.unwrap().unwrap();
        if j.state == JobState::Waiting {
            assert_eq!(j.attempts, 0, "a handed-back job has not used an attempt");
        }
    }
}
}
