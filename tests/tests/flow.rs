//! Flow control across worker processes: the global rate limit, the global cap on
//! active jobs, a limit changed at run time, and a rate pause signalled by a handler.
//! Each test runs its own `redis-server` and three real worker processes, and judges
//! by the start and finish times the jobs' records carry (Redis's clock), never by
//! sleeping.
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

use std::time::Duration;

use drover_queue::flow::{FlowPatch, RateLimit};
use drover_queue::{JobRecord, JobState, NewJob, Queue, QueueDefaults, Redis, RedisConfig};
use drover_tests::procs::Proc;
use drover_tests::{TestRedis, eventually_async};

const WORKER: &str = env!("CARGO_BIN_EXE_drover-test-worker");
const T: Duration = Duration::from_secs(60);

fn queue(url: &str, ns: &str) -> Queue {
    let redis = Redis::new(RedisConfig::new(url)).unwrap();
    Queue::new(redis, ns, "flow", QueueDefaults::default()).unwrap()
}

fn job(n: u64, sleep_ms: u64) -> NewJob {
    NewJob::new(&serde_json::json!({ "n": n, "sleep_ms": sleep_ms })).unwrap()
}

/// Three worker processes of concurrency 10 on the queue, registered.
async fn three_workers(url: &str, ns: &str, q: &Queue) -> Vec<Proc> {
    let procs: Vec<Proc> = (0..3)
        .map(|_| Proc::start_path(WORKER, &[url, ns, "flow", "10", "5000", "500"], &[]))
        .collect();
    eventually_async(T, "three live workers", || async {
        (q.workers().await.unwrap().len() >= 3).then_some(())
    })
    .await;
    procs
}

async fn all_completed(q: &Queue, ids: &[String]) -> Vec<JobRecord> {
    eventually_async(T, "every job completed", || async {
        (q.overview().await.unwrap().counts.completed >= ids.len() as u64).then_some(())
    })
    .await;
    let mut out = Vec::new();
    for id in ids {
        let j = q.get(id).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Completed, "job {id}");
        out.push(j);
    }
    out
}

async fn enqueue(q: &Queue, jobs: Vec<NewJob>) -> Vec<String> {
    q.enqueue_many(jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

fn rate(limit: i64, per_ms: i64, burst: i64) -> FlowPatch {
    FlowPatch {
        rate_limit: Some(Some(RateLimit::new(limit, per_ms, Some(burst)).unwrap())),
        max_active: None,
    }
}

/// The most starts in any window `[s, s + width)`.
fn busiest_window(starts: &[i64], width: i64) -> usize {
    starts
        .iter()
        .map(|&s| starts.iter().filter(|&&x| x >= s && x < s + width).count())
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_together_start_5_per_second_after_a_burst_of_5() {
    let server = TestRedis::start();
    let ns = drover_tests::namespace();
    let q = queue(&server.url(), &ns);
    q.set_flow_limits(rate(5, 1000, 5)).await.unwrap();
    let _workers = three_workers(&server.url(), &ns, &q).await;

    let ids = enqueue(&q, (0..60).map(|n| job(n, 10)).collect()).await;
    let done = all_completed(&q, &ids).await;
    let mut starts: Vec<i64> = done.iter().map(|j| j.started_at.unwrap()).collect();
    starts.sort_unstable();
    let from_first = |i: usize| starts[i] - starts[0];

    // The burst: five start together, the sixth waits for a token (200 ms).
    assert!(
        from_first(4) < 100,
        "the first five start together: {starts:?}"
    );
    assert!(
        from_first(5) >= 100,
        "the sixth waits for a token: {starts:?}"
    );
    // No 1-second window holds more than burst + rate.
    let busiest = busiest_window(&starts, 1000);
    assert!(busiest <= 10, "{busiest} starts in one second: {starts:?}");
    // The other 55 start at 5/s: 11 s, give or take a loaded machine's lateness.
    let span = from_first(59);
    assert!(
        (10_600..=14_000).contains(&span),
        "60 jobs took {span} ms, not about 11 s: {starts:?}"
    );
    // And in the steady state no second after the burst holds more than 5 (+1 for a
    // token that falls due on the window's edge).
    let steady: Vec<i64> = starts[5..].to_vec();
    let busiest = busiest_window(&steady, 1000);
    assert!(
        busiest <= 6,
        "{busiest} starts in one steady second: {starts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_active_2_holds_across_three_workers_of_concurrency_10() {
    let server = TestRedis::start();
    let ns = drover_tests::namespace();
    let q = queue(&server.url(), &ns);
    q.set_flow_limits(FlowPatch {
        rate_limit: None,
        max_active: Some(Some(2)),
    })
    .await
    .unwrap();
    let _workers = three_workers(&server.url(), &ns, &q).await;

    let ids = enqueue(&q, (0..30).map(|n| job(n, 100)).collect()).await;
    let done = all_completed(&q, &ids).await;
    // Sweep the recorded intervals: +1 at a start, -1 at a finish (finishes first
    // when they tie: the slot was free).
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for j in &done {
        edges.push((j.started_at.unwrap(), 1));
        edges.push((j.finished_at.unwrap(), -1));
    }
    edges.sort_unstable();
    let (mut running, mut most) = (0, 0);
    for (_, d) in edges {
        running += d;
        most = most.max(running);
    }
    assert_eq!(
        most, 2,
        "at most 2 running at any instant, and the cap is used"
    );
    let workers: std::collections::BTreeSet<_> =
        done.iter().filter_map(|j| j.worker.clone()).collect();
    assert!(workers.len() >= 2, "the jobs were shared out: {workers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_raised_at_run_time_holds_within_a_second() {
    let server = TestRedis::start();
    let ns = drover_tests::namespace();
    let q = queue(&server.url(), &ns);
    q.set_flow_limits(rate(1, 1000, 1)).await.unwrap();
    let _workers = three_workers(&server.url(), &ns, &q).await;
    let ids = enqueue(&q, (0..60).map(|n| job(n, 5)).collect()).await;
    eventually_async(T, "two jobs started at 1/s", || async {
        (q.overview().await.unwrap().counts.completed >= 2).then_some(())
    })
    .await;

    let changed_at = drover_queue::queue::now_ms();
    q.set_flow_limits(rate(50, 1000, 1)).await.unwrap();
    let done = all_completed(&q, &ids).await;
    let mut starts: Vec<i64> = done.iter().map(|j| j.started_at.unwrap()).collect();
    starts.sort_unstable();
    let before = starts.iter().filter(|&&s| s < changed_at).count();
    assert!(before <= 4, "1/s before the change: {before} started");
    // Within a second of the change the new rate holds: the second after it starts
    // far more than the old limit's one job.
    let within = starts
        .iter()
        .filter(|&&s| s >= changed_at && s < changed_at + 1000)
        .count();
    assert!(
        within >= 20,
        "{within} started in the second after the raise: {starts:?}"
    );
    let span = starts[59] - changed_at;
    assert!(span < 4000, "the rest ran at the new rate: {span} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_rate_pause_stops_every_start_of_the_queue_meanwhile() {
    let server = TestRedis::start();
    let ns = drover_tests::namespace();
    let q = queue(&server.url(), &ns);
    let _workers = three_workers(&server.url(), &ns, &q).await;

    let pauser = q
        .enqueue(NewJob::new(&serde_json::json!({ "n": 0, "rate_pause_ms": 2000 })).unwrap())
        .await
        .unwrap()
        .id;
    let deferred = eventually_async(T, "the job deferred", || async {
        q.get(&pauser)
            .await
            .unwrap()
            .filter(|j| j.deferrals == 1 && j.state != JobState::Active)
    })
    .await;
    let status = q.flow_status().await.unwrap();
    assert!(status.rate_paused_for_ms > 0, "{status:?}");
    assert!(status.expected_start_delay_ms > 0, "{status:?}");
    let pause_until = deferred.run_at;

    let ids = enqueue(&q, (1..=20).map(|n| job(n, 5)).collect()).await;
    let done = all_completed(&q, &ids).await;
    for j in &done {
        let s = j.started_at.unwrap();
        assert!(
            s >= pause_until,
            "job {} started {} ms into the pause",
            j.id,
            pause_until - s
        );
    }
    let p = wait_completed(&q, &pauser).await;
    assert_eq!(p.attempts, 1, "the deferral spent no attempt");
    assert_eq!(p.deferrals, 1);
    assert!(
        p.errors.is_empty(),
        "a deferral is not a failure: {:?}",
        p.errors
    );
}

async fn wait_completed(q: &Queue, id: &str) -> JobRecord {
    eventually_async(T, "the job completed", || async {
        q.get(id)
            .await
            .unwrap()
            .filter(|j| j.state == JobState::Completed)
    })
    .await
}
