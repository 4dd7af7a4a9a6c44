//! Pause is enforced in Redis: no worker anywhere starts a job of a paused queue.
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use drover_queue::worker::{JobContext, WakeHub};
use drover_queue::{EventType, JobState, NewJob};
use drover_tests::each_target;

const T: Duration = Duration::from_secs(20);

each_target! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_job_starts_while_paused_running_ones_finish_and_resume_runs_the_rest(target) {
    let (redis, queue) = shared_queue(target);
    let ns = ns_of(&queue);
    let started = Arc::new(Mutex::new(Vec::<String>::new()));
    let s = started.clone();
    let h = Handler::new(move |_job: TestJob, ctx: JobContext, _w| {
        s.lock().unwrap().push(ctx.id().to_owned());
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            Ok(serde_json::Value::Null)
        })
    });
    // Two workers with wake-up hubs of their own: two processes, as far as Redis knows.
    let (hub_a, hub_b) = (
        WakeHub::start(redis.clone(), &ns),
        WakeHub::start(redis.clone(), &ns),
    );
    let a = spawn_worker(&queue, &hub_a, fast_options(2), h.clone());
    let b = spawn_worker(&queue, &hub_b, fast_options(2), h);
    let ids: Vec<String> = queue
        .enqueue_many(
            (0..30)
                .map(|n| {
                    NewJob::new(&TestJob {
                        n,
                        ..Default::default()
                    })
                    .unwrap()
                })
                .collect(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    drover_tests::eventually_async(T, "four jobs running", || async {
        (started.lock().unwrap().len() >= 4).then_some(())
    })
    .await;

    assert!(queue.pause().await.unwrap());
    // Allowed to start from now on: only jobs already leased at the pause (they were
    // "active" before it). Everything that started before it is allowed too, of course.
    let before: BTreeSet<String> = started.lock().unwrap().iter().cloned().collect();
    let leased: BTreeSet<String> = queue
        .list(JobState::Active, None, 1000)
        .await
        .unwrap()
        .jobs
        .into_iter()
        .map(|j| j.id)
        .collect();
    drover_tests::eventually_async(T, "the running jobs to finish", || async {
        (queue.overview().await.unwrap().counts.active == 0).then_some(())
    })
    .await;
    // Prove the workers looked at the queue while it was paused: a new job wakes them
    // (the enqueue clears the sleep flag and publishes), and a worker that fetches
    // from a paused queue sets the flag again.
    let late = queue
        .enqueue(
            NewJob::new(&TestJob {
                n: 99,
                ..Default::default()
            })
            .unwrap(),
        )
        .await
        .unwrap();
    drover_tests::eventually_async(T, "a worker to fetch from the paused queue", || async {
        let n: i64 = redis
            .query(redis::cmd("EXISTS").arg(&queue.keys().sleep))
            .await
            .unwrap();
        (n == 1).then_some(())
    })
    .await;
    let so_far: Vec<String> = started.lock().unwrap().clone();
    for id in &so_far {
        assert!(
            before.contains(id) || leased.contains(id),
            "job {id} started while the queue was paused"
        );
    }
    assert!(!so_far.contains(&late.id));
    let o = queue.overview().await.unwrap();
    assert_eq!(o.counts.active, 0);
    assert_eq!(
        o.counts.completed as usize,
        so_far.len(),
        "the jobs running at the pause finished"
    );
    assert_eq!(o.counts.waiting as usize, 31 - so_far.len());

    assert!(queue.resume().await.unwrap());
    for id in ids.iter().chain([&late.id]) {
        let rec = wait_finished(&queue, id, T).await;
        assert_eq!(rec.state, JobState::Completed);
        assert_eq!(rec.attempts, 1);
    }
    let runs = started.lock().unwrap().len();
    assert_eq!(runs, 31, "each job ran exactly once");
    let kinds: Vec<EventType> = queue
        .events_after("0", 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&EventType::QueuePaused) && kinds.contains(&EventType::QueueResumed));
    a.stop().await;
    b.stop().await;
}
}
