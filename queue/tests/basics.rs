#![allow(clippy::unwrap_used)] // Tests fail by panicking.
//! Enqueue, run, read and administer jobs on a real Redis (the machine's, in a
//! namespace of each test's own).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use drover_queue::worker::{JobContext, JobError, WakeHub, WorkerOptions};
use drover_queue::{
    EventType, JobOptions, JobState, MoveOutcome, NewJob, Queue, Redis, RemoveOutcome,
};
use drover_tests::each_target;
use tokio::sync::Notify;

const T: Duration = Duration::from_secs(15);

fn job(n: u64) -> NewJob {
    NewJob::new(&TestJob {
        n,
        ..Default::default()
    })
    .unwrap()
}

/// A handler that records the `n` of every job it starts.
fn recorder() -> (Handler, Arc<Mutex<Vec<u64>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let h = Handler::new(move |job: TestJob, _ctx: JobContext, _w| {
        s.lock().unwrap().push(job.n);
        Box::pin(async move { Ok(serde_json::json!({ "n": job.n })) })
    });
    (h, seen)
}

each_target! {
#[tokio::test]
async fn a_job_runs_to_completion_and_its_events_tell_the_story(target) {
    let (redis, queue) = shared_queue(target);
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let w = spawn_worker(&queue, &hub, fast_options(2), obedient());

    let e = queue
        .enqueue(job(7).with_request_id("req-1"))
        .await
        .unwrap();
    assert!(e.created);
    let rec = wait_finished(&queue, &e.id, T).await;
    assert_eq!(rec.state, JobState::Completed);
    assert_eq!(rec.result, Some(serde_json::json!({ "n": 7 })));
    assert_eq!(rec.attempts, 1);
    assert_eq!(rec.request_id.as_deref(), Some("req-1"));
    assert!(rec.started_at.unwrap() >= rec.created_at);
    assert!(rec.finished_at.unwrap() >= rec.started_at.unwrap());
    assert_eq!(rec.worker.as_deref(), Some(w.id.as_str()));

    let kinds: Vec<EventType> = queue
        .events_after("0", 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|ev| ev.job_id == e.id)
        .map(|ev| ev.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventType::JobQueued,
            EventType::JobActive,
            EventType::JobCompleted
        ]
    );

    let o = queue.overview().await.unwrap();
    assert_eq!(
        (o.counts.completed, o.counts.waiting, o.counts.active),
        (1, 0, 0)
    );
    w.stop().await;
}
}

each_target! {
#[tokio::test]
async fn progress_reports_reach_the_job_and_the_stream(target) {
    let (redis, queue) = shared_queue(target);
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let q = queue.clone();
    let h = Handler::new(move |_job: TestJob, ctx: JobContext, _w| {
        let q = q.clone();
        Box::pin(async move {
            for i in 1..=200u32 {
                // A tight loop: the reports must be coalesced, not all written.
                ctx.progress(
                    (i / 2) as u8,
                    format!("row {i}"),
                    serde_json::json!({ "rows": i }),
                );
            }
            // Finish only once the last report is written, so it is not lost to the
            // job's completion.
            drover_tests::eventually_async(T, "the last report to be written", || async {
                let j = q.get(ctx.id()).await.ok().flatten()?;
                (j.progress_message.as_deref() == Some("row 200")).then_some(())
            })
            .await;
            Ok(serde_json::Value::Null)
        })
    });
    let w = spawn_worker(&queue, &hub, fast_options(1), h);
    let e = queue.enqueue(job(1)).await.unwrap();
    wait_finished(&queue, &e.id, T).await;
    let progress: Vec<_> = queue
        .events_after("0", 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|ev| ev.kind == EventType::JobProgress)
        .collect();
    assert!(!progress.is_empty(), "no progress event");
    assert!(
        progress.len() < 20,
        "{} progress events for one tight loop",
        progress.len()
    );
    let last = progress.last().unwrap();
    assert_eq!(last.progress, 100);
    assert_eq!(last.message, "row 200");
    assert_eq!(last.data["rows"], 200);
    w.stop().await;
}
}

each_target! {
#[tokio::test]
async fn an_idempotency_key_returns_the_first_job_and_runs_once(target) {
    let (redis, queue) = shared_queue(target);
    let opts = JobOptions {
        idempotency_key: Some("order-42".into()),
        ..Default::default()
    };
    let a = queue
        .enqueue(job(1).with_options(opts.clone()))
        .await
        .unwrap();
    let b = queue
        .enqueue(job(2).with_options(opts.clone()))
        .await
        .unwrap();
    assert!(a.created);
    assert!(!b.created);
    assert_eq!(a.id, b.id);
    // Within one batch too.
    let batch = queue
        .enqueue_many(vec![job(3).with_options(opts.clone()), job(4)])
        .await
        .unwrap();
    assert_eq!(batch[0].id, a.id);
    assert!(batch[1].created);

    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let (h, seen) = recorder();
    let w = spawn_worker(&queue, &hub, fast_options(2), h);
    wait_finished(&queue, &a.id, T).await;
    wait_finished(&queue, &batch[1].id, T).await;
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(seen, [1, 4]);
    w.stop().await;
}
}

each_target! {
#[tokio::test]
async fn higher_priority_runs_first_and_fifo_within_a_priority(target) {
    let (redis, queue) = shared_queue(target);
    let with = |n: u64, p: u16| {
        job(n).with_options(JobOptions {
            priority: Some(p),
            ..Default::default()
        })
    };
    // n encodes the expected order.
    let jobs = vec![
        with(4, 0),
        with(1, 10),
        with(5, 0),
        with(2, 10),
        with(3, 5),
        with(6, 0),
    ];
    let ids = queue.enqueue_many(jobs).await.unwrap();
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let (h, seen) = recorder();
    let w = spawn_worker(&queue, &hub, fast_options(1), h);
    for e in &ids {
        wait_finished(&queue, &e.id, T).await;
    }
    assert_eq!(*seen.lock().unwrap(), [1, 2, 3, 4, 5, 6]);
    w.stop().await;
}
}

each_target! {
#[tokio::test]
async fn a_delayed_job_waits_its_time(target) {
    let (redis, queue) = shared_queue(target);
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let w = spawn_worker(&queue, &hub, fast_options(1), obedient());
    let e = queue
        .enqueue(job(1).with_options(JobOptions {
            delay: Some(Duration::from_millis(300)),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(
        queue.get(&e.id).await.unwrap().unwrap().state,
        JobState::Delayed
    );
    let rec = wait_finished(&queue, &e.id, T).await;
    let waited = rec.started_at.unwrap() - rec.created_at;
    assert!(waited >= 300, "started after {waited} ms");
    // The worker's timer fires when the job falls due, not at the next slow poll.
    assert!(waited < 450, "started after {waited} ms");
    w.stop().await;
}
}

each_target! {
#[tokio::test]
async fn a_deleted_waiting_job_never_runs(target) {
    let (redis, queue) = shared_queue(target);
    queue.pause().await.unwrap();
    let a = queue.enqueue(job(1)).await.unwrap();
    let b = queue.enqueue(job(2)).await.unwrap();
    assert_eq!(
        queue.remove(&a.id).await.unwrap(),
        RemoveOutcome::Removed(JobState::Waiting)
    );
    assert_eq!(queue.remove(&a.id).await.unwrap(), RemoveOutcome::NotFound);
    assert!(queue.get(&a.id).await.unwrap().is_none());

    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let (h, seen) = recorder();
    let w = spawn_worker(&queue, &hub, fast_options(2), h);
    queue.resume().await.unwrap();
    wait_finished(&queue, &b.id, T).await;
    assert_eq!(*seen.lock().unwrap(), [2]);
    let removed = queue
        .events_after("0", 100)
        .await
        .unwrap()
        .into_iter()
        .any(|e| e.kind == EventType::JobRemoved && e.job_id == a.id);
    assert!(removed);
    w.stop().await;
}
}

each_target! {
#[tokio::test]
async fn deleting_an_active_job_is_refused(target) {
    let (redis, queue) = shared_queue(target);
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let gate = Arc::new(Notify::new());
    let started = Arc::new(Notify::new());
    let (g, s) = (gate.clone(), started.clone());
    let h = Handler::new(move |_job, _ctx, _w| {
        let (g, s) = (g.clone(), s.clone());
        Box::pin(async move {
            s.notify_one();
            g.notified().await;
            Ok(serde_json::Value::Null)
        })
    });
    let w = spawn_worker(&queue, &hub, fast_options(1), h);
    let e = queue.enqueue(job(1)).await.unwrap();
    tokio::time::timeout(T, started.notified()).await.unwrap();
    assert_eq!(queue.remove(&e.id).await.unwrap(), RemoveOutcome::Active);
    gate.notify_one();
    let rec = wait_finished(&queue, &e.id, T).await;
    assert_eq!(rec.state, JobState::Completed);
    // Finished jobs can be deleted.
    assert_eq!(
        queue.remove(&e.id).await.unwrap(),
        RemoveOutcome::Removed(JobState::Completed)
    );
    assert_eq!(queue.overview().await.unwrap().counts.completed, 0);
    w.stop().await;
}
}

each_target! {
#[tokio::test]
async fn retry_runs_a_failed_job_again_and_promote_runs_a_delayed_one_now(target) {
    let (redis, queue) = shared_queue(target);
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    // Fails permanently the first time it is called, then succeeds.
    let h = Handler::new(move |job: TestJob, _ctx, _w| {
        let first = c.fetch_add(1, Ordering::SeqCst) == 0;
        Box::pin(async move {
            if first && job.n == 1 {
                return Err(JobError::permanent("not yet"));
            }
            Ok(serde_json::Value::Null)
        })
    });
    let w = spawn_worker(&queue, &hub, fast_options(1), h);
    let e = queue.enqueue(job(1)).await.unwrap();
    let rec = wait_finished(&queue, &e.id, T).await;
    assert_eq!(rec.state, JobState::Failed);
    assert_eq!(
        queue.promote(&e.id).await.unwrap(),
        MoveOutcome::WrongState(JobState::Failed)
    );
    assert_eq!(queue.retry(&e.id).await.unwrap(), MoveOutcome::Moved);
    let rec = drover_tests::eventually_async(T, "retried job to complete", || async {
        queue
            .get(&e.id)
            .await
            .unwrap()
            .filter(|j| j.state == JobState::Completed)
    })
    .await;
    assert_eq!(rec.attempts, 1, "a retried job starts its attempts afresh");
    assert_eq!(rec.errors.len(), 1, "and keeps its error history");
    assert_eq!(
        queue.retry(&e.id).await.unwrap(),
        MoveOutcome::WrongState(JobState::Completed)
    );
    assert_eq!(
        queue.retry("01NOSUCHJOB").await.unwrap(),
        MoveOutcome::NotFound
    );

    let d = queue
        .enqueue(job(2).with_options(JobOptions {
            delay: Some(Duration::from_secs(3600)),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(queue.promote(&d.id).await.unwrap(), MoveOutcome::Moved);
    let rec = wait_finished(&queue, &d.id, T).await;
    assert_eq!(rec.state, JobState::Completed);
    w.stop().await;
}
}

each_target! {
#[tokio::test]
async fn clean_removes_only_finished_jobs_older_than_the_grace_and_at_most_n(target) {
    let (redis, queue) = shared_queue(target);
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let w = spawn_worker(&queue, &hub, fast_options(4), obedient());
    let ids = queue.enqueue_many((0..5).map(job).collect()).await.unwrap();
    for e in &ids {
        wait_finished(&queue, &e.id, T).await;
    }
    w.stop().await;
    queue.pause().await.unwrap();
    let waiting = queue.enqueue(job(99)).await.unwrap();

    assert_eq!(
        queue
            .clean(JobState::Completed, Duration::from_secs(3600), 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        queue
            .clean(JobState::Completed, Duration::ZERO, 3)
            .await
            .unwrap(),
        3
    );
    let o = queue.overview().await.unwrap();
    assert_eq!((o.counts.completed, o.counts.waiting), (2, 1));
    assert!(
        queue
            .clean(JobState::Waiting, Duration::ZERO, 3)
            .await
            .is_err()
    );
    assert_eq!(
        queue
            .clean(JobState::Completed, Duration::ZERO, 100)
            .await
            .unwrap(),
        2
    );
    assert!(queue.get(&waiting.id).await.unwrap().is_some());
    // The oldest went first.
    assert!(queue.get(&ids[0].id).await.unwrap().is_none());
    let cleaned = queue.events_after("0", 1000).await.unwrap();
    assert!(
        cleaned
            .iter()
            .any(|e| e.kind == EventType::QueueCleaned && e.data["count"] == 3)
    );
}
}

each_target! {
#[tokio::test]
async fn a_listing_pages_through_a_state_with_a_cursor(target) {
    let (_redis, queue) = shared_queue(target);
    queue.pause().await.unwrap();
    let ids: Vec<String> = queue
        .enqueue_many((0..25).map(job).collect())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = queue
            .list(JobState::Waiting, cursor.as_deref(), 10)
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.jobs.iter().map(|j| j.id.clone()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "waiting jobs list in run order, each once");
    assert!(
        queue
            .list(JobState::Waiting, Some("garbage"), 10)
            .await
            .is_err()
    );
    assert!(
        queue
            .list(JobState::Failed, None, 10)
            .await
            .unwrap()
            .jobs
            .is_empty()
    );
}
}

each_target! {
#[tokio::test]
async fn the_overview_counts_states_and_the_oldest_wait(target) {
    let (_redis, queue) = shared_queue(target);
    queue.pause().await.unwrap();
    assert!(
        !queue.pause().await.unwrap(),
        "pausing twice changes nothing"
    );
    let empty = queue.overview().await.unwrap();
    assert_eq!(empty.oldest_waiting_age_ms, None);
    queue.enqueue_many((0..3).map(job).collect()).await.unwrap();
    queue
        .enqueue(job(9).with_options(JobOptions {
            delay: Some(Duration::from_secs(60)),
            ..Default::default()
        }))
        .await
        .unwrap();
    let o = queue.overview().await.unwrap();
    assert!(o.paused);
    assert_eq!((o.counts.waiting, o.counts.delayed), (3, 1));
    assert!(o.oldest_waiting_age_ms.is_some());
    assert!(queue.is_paused().await.unwrap());
    assert!(queue.resume().await.unwrap());
    assert!(!queue.is_paused().await.unwrap());
}
}

each_target! {
#[tokio::test]
async fn a_payload_that_does_not_fit_fails_at_once(target) {
    let (redis, queue) = shared_queue(target);
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let w = spawn_worker(&queue, &hub, fast_options(1), obedient());
    let e = queue
        .enqueue(NewJob::raw(r#"{"nope":1}"#.into()))
        .await
        .unwrap();
    let rec = wait_finished(&queue, &e.id, T).await;
    assert_eq!(rec.state, JobState::Failed);
    assert_eq!(rec.failed_reason.as_deref(), Some("permanent"));
    assert_eq!(rec.errors.len(), 1);
    assert!(
        rec.errors[0].error.contains("payload does not fit"),
        "{}",
        rec.errors[0].error
    );
    // The attempt names the worker that ran it, as the job does.
    assert!(rec.worker.is_some());
    assert_eq!(rec.errors[0].worker, rec.worker);
    w.stop().await;
}
}

each_target! {
#[tokio::test]
async fn live_workers_are_listed_until_they_stop(target) {
    let (redis, queue) = shared_queue(target);
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let w = spawn_worker(&queue, &hub, fast_options(3), obedient());
    let id = w.id.clone();
    let info = drover_tests::eventually_async(T, "the worker's heartbeat", || async {
        queue
            .workers()
            .await
            .unwrap()
            .into_iter()
            .find(|x| x.id == id)
    })
    .await;
    assert_eq!(info.info["concurrency"], 3);
    assert_eq!(info.info["pid"], std::process::id());
    w.stop().await;
    assert!(
        queue.workers().await.unwrap().iter().all(|x| x.id != id),
        "a stopped worker says goodbye"
    );
}
}

each_target! {
#[tokio::test]
async fn per_minute_counters_count_outcomes(target) {
    let (redis, queue) = shared_queue(target);
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let w = spawn_worker(&queue, &hub, fast_options(4), obedient());
    let ok = queue.enqueue_many((0..4).map(job).collect()).await.unwrap();
    let bad = queue
        .enqueue(
            NewJob::new(&TestJob {
                n: 9,
                permanent: true,
                ..Default::default()
            })
            .unwrap(),
        )
        .await
        .unwrap();
    let flaky = queue
        .enqueue(
            NewJob::new(&TestJob {
                n: 8,
                fail_times: 1,
                ..Default::default()
            })
            .unwrap(),
        )
        .await
        .unwrap();
    for e in ok.iter().chain([&bad, &flaky]) {
        wait_finished(&queue, &e.id, T).await;
    }
    let stats = queue.minute_stats(2).await.unwrap();
    let sum = |f: fn(&drover_queue::MinuteStats) -> u64| stats.iter().map(f).sum::<u64>();
    assert_eq!(sum(|m| m.completed), 5);
    assert_eq!(sum(|m| m.failed), 1);
    assert_eq!(sum(|m| m.retried), 1);
    assert_eq!(sum(|m| m.started), 7);
    w.stop().await;
}
}

each_target! {
#[tokio::test]
async fn bad_options_are_refused_and_enqueue_nothing(target) {
    let (_redis, queue) = shared_queue(target);
    let bad = job(1).with_options(JobOptions {
        priority: Some(5000),
        ..Default::default()
    });
    let err = queue.enqueue_many(vec![job(0), bad]).await.unwrap_err();
    assert!(err.to_string().contains("priority"), "{err}");
    let o = queue.overview().await.unwrap();
    assert_eq!(o.counts, drover_queue::Counts::default());
}
}

/// A handler whose jobs with `n < gated_below` each wait for one permit of the gate.
fn gated(gated_below: u64) -> (Handler, Arc<tokio::sync::Semaphore>) {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    let h = Handler::new(move |job: TestJob, _ctx: JobContext, _w| {
        let g = g.clone();
        Box::pin(async move {
            if job.n < gated_below {
                g.acquire().await.unwrap().forget();
            }
            Ok(serde_json::json!({ "n": job.n }))
        })
    });
    (h, gate)
}

/// Starts a worker of `slots` slots and this coalescing window, whose jobs with
/// `n < 100` hold their slot until the gate lets them finish, and waits until the
/// queue's jobs (enqueued before) have taken every slot.
async fn every_slot_held(
    queue: &Queue,
    hub: &WakeHub,
    slots: usize,
    coalesce: Duration,
) -> (RunningWorker, Arc<tokio::sync::Semaphore>) {
    let (h, gate) = gated(100);
    let opts = WorkerOptions {
        fetch_coalesce: coalesce,
        ..fast_options(slots)
    };
    let w = spawn_worker(queue, hub, opts, h);
    drover_tests::eventually_async(T, "every slot to be taken", || async {
        let s = queue.overview().await.unwrap();
        (s.counts.active == slots as u64).then_some(())
    })
    .await;
    (w, gate)
}

/// The fetch (by the worker's sequence number) that leased each job.
async fn fetch_seqs(redis: &Redis, queue: &Queue, ids: &[String]) -> Vec<u64> {
    let mut seqs = Vec::new();
    for id in ids {
        let seq: u64 = redis
            .query(redis::cmd("HGET").arg(queue.keys().job(id)).arg("fetch"))
            .await
            .unwrap();
        seqs.push(seq);
    }
    seqs
}

each_target! {
#[tokio::test]
async fn a_busy_worker_gathers_slots_freed_one_by_one_into_one_fetch(target) {
    let (redis, queue) = shared_queue(target);
    // Ten jobs that hold every slot until released, then ten that finish at once.
    let held = queue
        .enqueue_many((0..10).map(job).collect())
        .await
        .unwrap();
    let quick = queue
        .enqueue_many((100..110).map(job).collect())
        .await
        .unwrap();
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    // A window far longer than the test: only enough free slots can end the wait.
    let (w, gate) = every_slot_held(&queue, &hub, 10, Duration::from_secs(60)).await;

    // Free five slots one at a time, each after the previous job has finished:
    // a worker that fetched on every free slot would lease one job per fetch.
    for e in held.iter().take(5) {
        gate.add_permits(1);
        wait_finished(&queue, &e.id, T).await;
    }
    for e in &quick {
        wait_finished(&queue, &e.id, T).await;
    }
    let ids: Vec<String> = quick.iter().map(|e| e.id.clone()).collect();
    let seqs = fetch_seqs(&redis, &queue, &ids).await;
    // Five slots free at a time: the ten quick jobs come in two fetches of five.
    assert!(seqs[..5].iter().all(|s| *s == seqs[0]), "fetches {seqs:?}");
    assert!(seqs[5..].iter().all(|s| *s == seqs[5]), "fetches {seqs:?}");
    assert_ne!(seqs[0], seqs[5], "fetches {seqs:?}");

    gate.add_permits(5);
    for e in &held {
        wait_finished(&queue, &e.id, T).await;
    }
    w.stop().await;
}
}

each_target! {
#[tokio::test]
async fn a_busy_worker_waits_no_longer_than_its_coalescing_window(target) {
    let (redis, queue) = shared_queue(target);
    let held = queue.enqueue_many((0..4).map(job).collect()).await.unwrap();
    let hub = WakeHub::start(redis.clone(), &ns_of(&queue));
    let (w, gate) = every_slot_held(&queue, &hub, 4, Duration::from_millis(200)).await;
    // One slot frees while three jobs keep theirs: fewer than half the slots are
    // free, and none ever will be, yet the next job starts once the window ends.
    let next = queue.enqueue(job(100)).await.unwrap();
    gate.add_permits(1);
    let rec = wait_finished(&queue, &next.id, T).await;
    assert_eq!(rec.state, JobState::Completed);

    gate.add_permits(3);
    for e in &held {
        wait_finished(&queue, &e.id, T).await;
    }
    w.stop().await;
}
}
