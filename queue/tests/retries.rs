#![allow(clippy::unwrap_used)] // Tests fail by panicking.
//! Durable retries with exponential backoff, and how attempts end.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use drover_queue::worker::{JobContext, JobError, WakeHub};
use drover_queue::{Backoff, BackoffKind, JobOptions, JobState, NewJob};
use drover_tests::each_target;

const T: Duration = Duration::from_secs(20);

fn flaky(fail_times: u32) -> NewJob {
    NewJob::new(&TestJob {
        n: 1,
        fail_times,
        ..Default::default()
    })
    .unwrap()
}

each_target! {
#[tokio::test]
async fn a_job_failing_twice_then_succeeding_completes_with_growing_gaps(target) {
    let (redis, queue) = shared_queue(target);
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let w = spawn_worker(&queue, &hub, fast_options(2), obedient());
    let backoff = Backoff {
        kind: BackoffKind::Exponential,
        delay_ms: 150,
        factor: 3.0,
        max_delay_ms: 10_000,
        jitter: 0.2,
    };
    let e = queue
        .enqueue(flaky(2).with_options(JobOptions {
            max_attempts: Some(5),
            backoff: Some(backoff),
            ..Default::default()
        }))
        .await
        .unwrap();
    let rec = wait_finished(&queue, &e.id, T).await;
    assert_eq!(rec.state, JobState::Completed);
    assert_eq!(rec.attempts, 3);
    assert_eq!(rec.errors.len(), 2);
    assert_eq!(rec.errors[0].attempt, 1);
    assert_eq!(rec.errors[1].attempt, 2);
    assert!(rec.errors[0].error.contains("planned failure 1"));

    // The delays as the ack script recorded them: each `job:retrying` event says when
    // the next attempt may run. Jitter takes up to 20 % off; nothing here depends on
    // how fast a loaded machine picks the retry up.
    let retries = retrying_events(&queue).await;
    assert_eq!(retries.len(), 2);
    let delay = |i: usize| retries[i].data["delay_ms"].as_i64().unwrap();
    let run_at = |i: usize| retries[i].data["run_at"].as_i64().unwrap();
    assert!((120..=150).contains(&delay(0)), "first delay {}", delay(0));
    assert!((360..=450).contains(&delay(1)), "second delay {}", delay(1));
    for i in 0..2 {
        assert_eq!(
            run_at(i),
            rec.errors[i].at + delay(i),
            "run_at = failure + delay"
        );
    }
    // A retry never runs early.
    assert!(rec.errors[1].started_at >= run_at(0));
    assert!(rec.started_at.unwrap() >= run_at(1));

    let kinds: Vec<_> = queue
        .events_after("0", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "job:queued",
            "job:active",
            "job:retrying",
            "job:active",
            "job:retrying",
            "job:active",
            "job:completed"
        ]
    );
    w.stop().await;
}
}

each_target! {
#[tokio::test]
async fn exhausted_attempts_fail_the_job_with_every_error(target) {
    let (redis, queue) = shared_queue(target);
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let w = spawn_worker(&queue, &hub, fast_options(1), obedient());
    let e = queue
        .enqueue(flaky(100).with_options(JobOptions {
            max_attempts: Some(3),
            ..Default::default()
        }))
        .await
        .unwrap();
    let rec = wait_finished(&queue, &e.id, T).await;
    assert_eq!(rec.state, JobState::Failed);
    assert_eq!(rec.attempts, 3);
    assert_eq!(rec.failed_reason.as_deref(), Some("attempts_exhausted"));
    let attempts: Vec<u32> = rec.errors.iter().map(|e| e.attempt).collect();
    assert_eq!(attempts, [1, 2, 3]);
    for (i, err) in rec.errors.iter().enumerate() {
        assert_eq!(err.error, format!("planned failure {}", i + 1));
        assert!(err.at >= err.started_at);
    }
    w.stop().await;
}
}

each_target! {
#[tokio::test]
async fn a_permanent_error_fails_the_job_after_one_attempt(target) {
    let (redis, queue) = shared_queue(target);
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let w = spawn_worker(&queue, &hub, fast_options(1), obedient());
    let e = queue
        .enqueue(
            NewJob::new(&TestJob {
                n: 1,
                permanent: true,
                ..Default::default()
            })
            .unwrap(),
        )
        .await
        .unwrap();
    let rec = wait_finished(&queue, &e.id, T).await;
    assert_eq!(rec.state, JobState::Failed);
    assert_eq!(rec.attempts, 1);
    assert_eq!(rec.failed_reason.as_deref(), Some("permanent"));
    assert_eq!(rec.errors.len(), 1);
    w.stop().await;
}
}

each_target! {
#[tokio::test]
async fn a_panicking_handler_is_a_retryable_failure(target) {
    let (redis, queue) = shared_queue(target);
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let h = Handler::new(|_job: TestJob, ctx: JobContext, _w| {
        Box::pin(async move {
            if ctx.attempt() == 1 {
                panic!("boom");
            }
            Ok(serde_json::Value::Null)
        })
    });
    let w = spawn_worker(&queue, &hub, fast_options(1), h);
    let e = queue.enqueue(flaky(0)).await.unwrap();
    let rec = wait_finished(&queue, &e.id, T).await;
    assert_eq!(rec.state, JobState::Completed);
    assert_eq!(rec.attempts, 2);
    assert_eq!(rec.errors[0].error, "handler panicked: boom");
    w.stop().await;
}
}

each_target! {
#[tokio::test]
async fn retry_after_defers_without_spending_an_attempt(target) {
    let (redis, queue) = shared_queue(target);
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let h = Handler::new(|_job: TestJob, ctx: JobContext, _w| {
        Box::pin(async move {
            if ctx.deferrals() == 0 {
                return Err(JobError::retry_after(
                    "rate limited",
                    Duration::from_millis(400),
                ));
            }
            Ok(serde_json::json!({ "attempt": ctx.attempt(), "deferrals": ctx.deferrals() }))
        })
    });
    let w = spawn_worker(&queue, &hub, fast_options(1), h);
    let e = queue.enqueue(flaky(0)).await.unwrap();
    let rec = wait_finished(&queue, &e.id, T).await;
    assert_eq!(rec.state, JobState::Completed);
    assert_eq!(rec.attempts, 1, "a deferral is not a failed attempt");
    assert_eq!(rec.deferrals, 1);
    assert!(rec.errors.is_empty(), "{:?}", rec.errors);
    assert_eq!(
        rec.result.unwrap()["attempt"],
        1,
        "the run after it is attempt 1 again"
    );
    let retries = retrying_events(&queue).await;
    assert_eq!(
        retries[0].data["delay_ms"], 400,
        "the handler's delay, not the backoff"
    );
    assert_eq!(retries[0].data["deferred"], true);
    let run_at = retries[0].data["run_at"].as_i64().unwrap();
    assert_eq!(run_at, retries[0].ts + 400);
    assert!(
        rec.started_at.unwrap() >= run_at,
        "a deferred job never runs early"
    );
    w.stop().await;
}
}

each_target! {
#[tokio::test]
async fn a_job_deferred_more_than_max_attempts_times_fails(target) {
    let (redis, queue) = shared_queue(target);
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let h = Handler::new(|_job: TestJob, _ctx: JobContext, _w| {
        Box::pin(async move {
            Err::<serde_json::Value, _>(JobError::retry_after(
                "429 again",
                Duration::from_millis(20),
            ))
        })
    });
    let w = spawn_worker(&queue, &hub, fast_options(1), h);
    let e = queue
        .enqueue(flaky(0).with_options(JobOptions {
            max_attempts: Some(3),
            ..Default::default()
        }))
        .await
        .unwrap();
    let rec = wait_finished(&queue, &e.id, T).await;
    assert_eq!(rec.state, JobState::Failed);
    assert_eq!(rec.failed_reason.as_deref(), Some("deferrals_exhausted"));
    assert_eq!(
        rec.deferrals, 3,
        "three deferrals, then the fourth fails it"
    );
    assert_eq!(rec.attempts, 1, "only the last run counts as an attempt");
    assert_eq!(retrying_events(&queue).await.len(), 3);
    w.stop().await;
}
}

each_target! {
#[tokio::test]
async fn a_huge_retry_after_is_capped_by_the_max_delay(target) {
    let (redis, queue) = shared_queue(target);
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let h = Handler::new(|_job: TestJob, ctx: JobContext, _w| {
        Box::pin(async move {
            let delay = match ctx.deferrals() {
                0 => Duration::MAX,
                1 => Duration::from_secs(u64::MAX / 1000),
                _ => return Ok(serde_json::Value::Null),
            };
            Err(JobError::retry_after("rate limited for ages", delay))
        })
    });
    let w = spawn_worker(&queue, &hub, fast_options(1), h);
    // fast_defaults: max_delay_ms 1000.
    let e = queue.enqueue(flaky(0)).await.unwrap();
    let rec = wait_finished(&queue, &e.id, T).await;
    assert_eq!(rec.state, JobState::Completed);
    assert_eq!(rec.attempts, 1);
    assert_eq!(rec.deferrals, 2);
    let retries = retrying_events(&queue).await;
    assert_eq!(retries.len(), 2);
    for ev in &retries {
        assert_eq!(
            ev.data["delay_ms"], 1000,
            "capped at the job's max_delay_ms"
        );
        assert_eq!(ev.data["run_at"].as_i64().unwrap(), ev.ts + 1000);
    }
    w.stop().await;
}
}

/// The `job:retrying` events of the queue, oldest first.
async fn retrying_events(queue: &drover_queue::Queue) -> Vec<drover_queue::Event> {
    queue
        .events_after("0", 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == drover_queue::EventType::JobRetrying)
        .collect()
}

each_target! {
#[tokio::test]
async fn a_job_waiting_in_backoff_survives_its_workers_restart(target) {
    let (redis, queue) = shared_queue(target);
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let h = Handler::new(move |_job: TestJob, ctx: JobContext, _w| {
        r.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if ctx.attempt() == 1 {
                return Err(JobError::retryable("transient"));
            }
            Ok(serde_json::Value::Null)
        })
    });
    let w = spawn_worker(&queue, &hub, fast_options(1), h.clone());
    let e = queue
        .enqueue(flaky(0).with_options(JobOptions {
            backoff: Some(Backoff::fixed(1500)),
            ..Default::default()
        }))
        .await
        .unwrap();
    drover_tests::eventually_async(T, "the job to wait out its backoff", || async {
        queue
            .get(&e.id)
            .await
            .unwrap()
            .filter(|j| j.state == JobState::Delayed)
    })
    .await;
    // The worker goes away while the retry waits; nothing of it lives in the worker.
    w.stop().await;
    drop(hub);
    assert_eq!(
        queue.get(&e.id).await.unwrap().unwrap().state,
        JobState::Delayed
    );

    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let w = spawn_worker(&queue, &hub, fast_options(1), h);
    let rec = wait_finished(&queue, &e.id, T).await;
    assert_eq!(rec.state, JobState::Completed);
    assert_eq!(rec.attempts, 2);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    w.stop().await;
}
}
