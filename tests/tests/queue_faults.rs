//! Fault tests of the queue: worker processes killed with SIGKILL, Redis stopped and
//! restarted, a backlog far larger than any script may touch at once. Each test runs
//! its own `redis-server` and its own worker processes, and stops them by pid.
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use drover_queue::{JobOptions, JobState, NewJob, Queue, QueueDefaults, Redis, RedisConfig};
use drover_tests::procs::Proc;
use drover_tests::{TestRedis, eventually_async};

const WORKER: &str = env!("CARGO_BIN_EXE_drover-test-worker");

fn queue(url: &str, ns: &str) -> (Redis, Queue) {
    let redis = Redis::new(RedisConfig::new(url)).unwrap();
    let q = Queue::new(redis.clone(), ns, "faults", QueueDefaults::default()).unwrap();
    (redis, q)
}

fn job(n: u64, sleep_ms: u64) -> NewJob {
    NewJob::new(&serde_json::json!({ "n": n, "sleep_ms": sleep_ms })).unwrap()
}

/// A worker process on the test's Redis: 10 at a time, 1 s leases, rescue every 200 ms.
fn worker(url: &str, ns: &str) -> Proc {
    Proc::start_path(WORKER, &[url, ns, "faults", "10", "1000", "200"], &[])
}

/// The ids of the jobs a worker process held when it died (still `active` under its name).
async fn held_by(redis: &Redis, q: &Queue, pid: u32) -> BTreeSet<String> {
    let ids: Vec<String> = redis
        .query(redis::cmd("ZRANGE").arg(&q.keys().active).arg(0).arg(-1))
        .await
        .unwrap();
    let workers: BTreeMap<String, u64> = q
        .workers()
        .await
        .unwrap()
        .into_iter()
        .map(|w| (w.id, w.info["pid"].as_u64().unwrap_or(0)))
        .collect();
    let mut held = BTreeSet::new();
    for id in ids {
        let j = q.get(&id).await.unwrap().unwrap();
        if j.state == JobState::Active
            && j.worker.as_ref().and_then(|w| workers.get(w)) == Some(&u64::from(pid))
        {
            held.insert(id);
        }
    }
    held
}

async fn completed(q: &Queue) -> u64 {
    q.overview().await.unwrap().counts.completed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_kill_9s_during_a_run_of_2000_jobs_lose_nothing() {
    let server = TestRedis::start();
    let ns = drover_tests::namespace();
    let (redis, q) = queue(&server.url(), &ns);
    let ids: Vec<String> = q
        .enqueue_many((0..2000).map(|n| job(n, 15)).collect())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();

    let mut a = worker(&server.url(), &ns);
    let mut b = worker(&server.url(), &ns);
    let t = Duration::from_secs(60);
    // Wait until both workers registered, so the kill finds their jobs by pid.
    eventually_async(t, "two live workers", || async {
        (q.workers().await.unwrap().len() >= 2).then_some(())
    })
    .await;

    eventually_async(t, "500 jobs done", || async {
        (completed(&q).await >= 500).then_some(())
    })
    .await;
    let a_pid = a.pid();
    a.kill9();
    let first = held_by(&redis, &q, a_pid).await;
    let _c = worker(&server.url(), &ns);

    eventually_async(t, "1200 jobs done", || async {
        (completed(&q).await >= 1200).then_some(())
    })
    .await;
    let b_pid = b.pid();
    b.kill9();
    let second = held_by(&redis, &q, b_pid).await;
    let _d = worker(&server.url(), &ns);

    eventually_async(t, "all 2000 jobs done", || async {
        (completed(&q).await == 2000).then_some(())
    })
    .await;
    assert!(
        !first.is_empty() && !second.is_empty(),
        "the kills must hit running jobs: {first:?} {second:?}"
    );

    let at_kill: BTreeSet<&String> = first.iter().chain(second.iter()).collect();
    let mut ran_twice = 0;
    for id in &ids {
        let j = q.get(id).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Completed, "job {id} is {:?}", j.state);
        if j.attempts > 1 {
            ran_twice += 1;
            assert!(
                at_kill.contains(id),
                "job {id} ran {} times but was not running at a kill",
                j.attempts
            );
        }
    }
    assert!(ran_twice >= 1, "jobs running at a kill run again");
    let o = q.overview().await.unwrap();
    assert_eq!(
        (
            o.counts.waiting,
            o.counts.active,
            o.counts.delayed,
            o.counts.failed
        ),
        (0, 0, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_for_3_s_and_restarted_loses_no_accepted_job() {
    let mut server = TestRedis::start_durable();
    let ns = drover_tests::namespace();
    let (_redis, q) = queue(&server.url(), &ns);
    let mut w = worker(&server.url(), &ns);

    // A producer submits a job every 2 ms throughout; it keeps the ids Redis accepted.
    let producer = {
        let q = q.clone();
        tokio::spawn(async move {
            let mut accepted = Vec::new();
            let mut refused = 0;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(7);
            let mut n = 0;
            let mut every_2ms = tokio::time::interval(Duration::from_millis(2));
            while tokio::time::Instant::now() < deadline {
                every_2ms.tick().await;
                n += 1;
                match q.enqueue(job(n, 1)).await {
                    Ok(e) => accepted.push(e.id),
                    Err(_) => refused += 1,
                }
            }
            (accepted, refused)
        })
    };
    eventually_async(
        Duration::from_secs(30),
        "jobs flowing before the outage",
        || async { (completed(&q).await >= 100).then_some(()) },
    )
    .await;
    server.kill();
    // The outage itself is what is being tested: three seconds without Redis.
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.restart();
    let (accepted, refused) = producer.await.unwrap();
    assert!(refused > 0, "the producer must have seen the outage");

    eventually_async(
        Duration::from_secs(60),
        "every accepted job to complete",
        || async {
            let mut pending = 0;
            for id in &accepted {
                match q.get(id).await {
                    Ok(Some(j)) if j.state == JobState::Completed => {}
                    Ok(Some(_)) => pending += 1,
                    Ok(None) => panic!("accepted job {id} was lost"),
                    Err(_) => pending += 1,
                }
            }
            (pending == 0).then_some(())
        },
    )
    .await;
    assert!(
        w.try_exit().is_none(),
        "the worker carried on without a restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_200k_jobs_drains_without_a_script_error() {
    let server = TestRedis::start();
    let ns = drover_tests::namespace();
    let (_redis, q) = queue(&server.url(), &ns);
    // Half ready, half delayed and falling due together: both must be handled in
    // bounded batches (an unbounded promote of 100,000 ids fails in Lua).
    let ready = NewJob::new(&serde_json::json!({ "n": 0 })).unwrap();
    let delayed = ready.clone().with_options(JobOptions {
        delay: Some(Duration::from_millis(1)),
        ..Default::default()
    });
    for chunk in 0..200 {
        let j = if chunk % 2 == 0 { &ready } else { &delayed };
        q.enqueue_many(vec![j.clone(); 1000]).await.unwrap();
    }
    let o = q.overview().await.unwrap();
    assert_eq!(o.counts.waiting + o.counts.delayed, 200_000);
    let _w = Proc::start_path(
        WORKER,
        &[&server.url(), &ns, "faults", "50", "30000", "1000"],
        &[],
    );
    eventually_async(Duration::from_secs(300), "the backlog to drain", || async {
        (completed(&q).await == 200_000).then_some(())
    })
    .await;
    let o = q.overview().await.unwrap();
    assert_eq!(
        (
            o.counts.waiting,
            o.counts.delayed,
            o.counts.active,
            o.counts.failed
        ),
        (0, 0, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_job_drains_what_finishes_in_time_and_hands_the_rest_to_another_worker_at_once()
{
    let server = TestRedis::start();
    let ns = drover_tests::namespace();
    let (redis, q) = queue(&server.url(), &ns);
    let url = server.url();
    // Leases of 30 s: a job left to expire would sit `active` far past every deadline
    // below, so only the hand-back can pass. Shutdown timeout: 1 s.
    let args = [
        url.as_str(),
        ns.as_str(),
        "faults",
        "2",
        "30000",
        "200",
        "1000",
    ];
    let mut a = Proc::start_path(WORKER, &args, &[]);
    let t = Duration::from_secs(30);
    eventually_async(t, "worker A registered", || async {
        (!q.workers().await.unwrap().is_empty()).then_some(())
    })
    .await;
    let short = q.enqueue(job(1, 300)).await.unwrap().id;
    let long = q.enqueue(job(2, 4000)).await.unwrap().id;
    let a_pid = a.pid();
    eventually_async(t, "both jobs running on A", || async {
        let held = held_by(&redis, &q, a_pid).await;
        (held.contains(&short) && held.contains(&long)).then_some(())
    })
    .await;
    let b = Proc::start_path(WORKER, &args, &[]);
    eventually_async(t, "worker B registered", || async {
        (q.workers().await.unwrap().len() >= 2).then_some(())
    })
    .await;

    a.sigterm();
    // The short job finishes during the drain, on A, as one attempt.
    let s = eventually_async(t, "the short job to complete", || async {
        let j = q.get(&short).await.unwrap().unwrap();
        (j.state == JobState::Completed).then_some(j)
    })
    .await;
    assert_eq!(s.attempts, 1);
    // A, draining, has a free slot but leases nothing more: this job goes to B.
    let third = q.enqueue(job(3, 300)).await.unwrap().id;

    let code = a.terminate(Duration::from_secs(15));
    let exited = std::time::Instant::now();
    assert_eq!(code, Some(0), "A stops cleanly");
    let b_pid = b.pid();
    // The long job was handed back at A's shutdown timeout, not left to its lease.
    eventually_async(
        Duration::from_secs(1),
        "B to run the long job within a second of A's exit",
        || async {
            let j = q.get(&long).await.unwrap().unwrap();
            (j.state == JobState::Completed || held_by(&redis, &q, b_pid).await.contains(&long))
                .then_some(())
        },
    )
    .await;
    assert!(
        exited.elapsed() < Duration::from_secs(1),
        "picked up {:?} after A's exit",
        exited.elapsed()
    );
    for id in [&long, &third] {
        let j = eventually_async(t, "the job to complete on B", || async {
            let j = q.get(id).await.unwrap().unwrap();
            (j.state == JobState::Completed).then_some(j)
        })
        .await;
        // The hand-back costs no attempt: the cut-off run does not count.
        assert_eq!(j.attempts, 1, "job {id}: {j:?}");
        let w = j.worker.clone().unwrap_or_default();
        assert!(
            w.contains(&format!("-{b_pid}-")),
            "job {id} ran last on {w}, not on B"
        );
    }
    let o = q.overview().await.unwrap();
    assert_eq!(
        (o.counts.waiting, o.counts.active, o.counts.completed),
        (0, 0, 3)
    );
}
