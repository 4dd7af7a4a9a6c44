//! `drover bench queue --queues N`: several queues busy at once, and on a Redis
//! Cluster, what each master spends per job.
//!
//! It enqueues `--jobs` jobs on each of `--queues` queues (not timed), then starts one
//! worker per queue in this process, all at once, and times the drain of every queue
//! → `process_jobs_per_s` (all queues together). On a cluster (`REDIS_URL` of the form
//! `redis+cluster://…`), the queue names are picked so that every master owns at least
//! one queue, and each master's CPU (`INFO cpu`, user + system) is read before and
//! after: `masters[].cpu_us_per_job` is the master's CPU over the jobs of the queues
//! it owns. The machine's cores are shared by the masters, the workers and this
//! process, so `projected_jobs_per_s` says what the masters could do with one core
//! each: the sum over masters of 10⁶ / `cpu_us_per_job`, were each master's queues
//! kept as busy as that master allows.
//!
//! The benchmark's keys are deleted at the end.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use drover_queue::keys::cluster_slot;
use drover_queue::worker::{WakeHub, WorkerOptions};
use drover_queue::{NewJob, Queue, QueueDefaults, Redis, RedisConfig};
use serde::Serialize;

use super::queue::{BenchJob, Probe, QueueBench, start_worker, wait_completed};

/// A master of the cluster (or the one server).
#[derive(Debug, Clone)]
struct Master {
    addr: String,
    slots: Vec<(u16, u16)>,
}

#[derive(Debug, Serialize)]
struct MasterReport {
    addr: String,
    queues: Vec<String>,
    jobs: u64,
    cpu_s: f64,
    cpu_us_per_job: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    cluster: bool,
    queues: usize,
    jobs_per_queue: usize,
    concurrency: usize,
    process_jobs_per_s: f64,
    masters: Vec<MasterReport>,
    /// This process (the workers of every queue): CPU seconds per second of the drain.
    bench_process_cores: f64,
    projected_jobs_per_s: f64,
}

/// Runs the benchmark.
pub async fn run(args: QueueBench) -> anyhow::Result<()> {
    let redis = Redis::new(RedisConfig::new(args.redis_url.clone()))?;
    redis
        .ping()
        .await
        .with_context(|| format!("reach Redis at {}", args.redis_url))?;
    let masters = masters(&redis, &args.redis_url).await?;
    let ns = format!("bench-{}", ulid::Ulid::new().to_string().to_lowercase());
    let names = spread_names(&ns, &masters, args.queues);
    let hub = WakeHub::start(redis.clone(), &ns);
    let queues: Vec<Queue> = names
        .iter()
        .map(|n| Queue::new(redis.clone(), &ns, n, QueueDefaults::default()))
        .collect::<Result<_, _>>()?;
    let result = measure(&args, &redis, &hub, &queues, &masters).await;
    for q in &queues {
        cleanup_queue(q).await;
    }
    let report = result?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

async fn measure(
    args: &QueueBench,
    redis: &Redis,
    hub: &WakeHub,
    queues: &[Queue],
    masters: &[Master],
) -> anyhow::Result<Report> {
    let payload = serde_json::to_string(&BenchJob::default())?;
    for q in queues {
        let mut left = args.jobs;
        while left > 0 {
            let n = left.min(1000);
            q.enqueue_many((0..n).map(|_| NewJob::raw(payload.clone())).collect())
                .await?;
            left -= n;
        }
    }
    let jobs_per_queue = args.jobs;
    eprintln!(
        "{} queues of {jobs_per_queue} jobs on {} master(s); draining…",
        queues.len(),
        masters.len()
    );
    let cpu_before = cpu_of(masters).await?;
    let own_before = own_cpu_s();
    let opts = WorkerOptions {
        prefetch: args.prefetch,
        fetch_coalesce: Duration::from_millis(args.fetch_coalesce_ms),
        ..WorkerOptions::with_concurrency(args.concurrency)
    };
    let probe = Probe::new();
    let t = Instant::now();
    let workers: Vec<_> = queues
        .iter()
        .map(|q| start_worker(q, hub, opts.clone(), probe.clone()))
        .collect();
    for q in queues {
        wait_completed(q, jobs_per_queue as u64, Duration::from_secs(900)).await?;
    }
    let secs = t.elapsed().as_secs_f64();
    let own = own_cpu_s() - own_before;
    let cpu_after = cpu_of(masters).await?;
    for w in workers {
        w.stop().await?;
    }
    let mut reports = Vec::new();
    for (i, m) in masters.iter().enumerate() {
        let owned: Vec<&Queue> = queues.iter().filter(|q| owns(m, q.slot())).collect();
        let jobs = (owned.len() * jobs_per_queue) as u64;
        let cpu_s = cpu_after[i] - cpu_before[i];
        reports.push(MasterReport {
            addr: m.addr.clone(),
            queues: owned.iter().map(|q| q.name().to_owned()).collect(),
            jobs,
            cpu_s: round(cpu_s, 3),
            cpu_us_per_job: if jobs > 0 {
                round(cpu_s * 1e6 / jobs as f64, 2)
            } else {
                0.0
            },
        });
    }
    let projected = reports
        .iter()
        .filter(|r| r.cpu_us_per_job > 0.0)
        .map(|r| 1e6 / r.cpu_us_per_job)
        .sum::<f64>();
    Ok(Report {
        cluster: redis.is_cluster(),
        queues: queues.len(),
        jobs_per_queue,
        concurrency: args.concurrency,
        process_jobs_per_s: ((queues.len() * jobs_per_queue) as f64 / secs).round(),
        masters: reports,
        bench_process_cores: round(own / secs, 2),
        projected_jobs_per_s: projected.round(),
    })
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

fn owns(m: &Master, slot: u16) -> bool {
    m.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
}

/// The masters: from `CLUSTER NODES` on a cluster, else the one server.
async fn masters(redis: &Redis, url: &str) -> anyhow::Result<Vec<Master>> {
    if !redis.is_cluster() {
        return Ok(vec![Master {
            addr: url.to_owned(),
            slots: vec![(0, 16383)],
        }]);
    }
    let text: String = redis
        .query(redis::cmd("CLUSTER").arg("NODES"))
        .await
        .context("CLUSTER NODES")?;
    let auth = url
        .split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .map(|(a, _)| format!("{a}@"))
        .unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") {
            continue;
        }
        let host = f[1].split('@').next().unwrap_or_default();
        let slots = f[8..]
            .iter()
            .filter_map(|s| match s.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => s.parse().ok().map(|x| (x, x)),
            })
            .collect();
        out.push(Master {
            addr: format!("redis://{auth}{host}"),
            slots,
        });
    }
    anyhow::ensure!(!out.is_empty(), "CLUSTER NODES lists no master");
    out.sort_by(|a, b| a.addr.cmp(&b.addr));
    Ok(out)
}

/// `count` queue names, spread so that every master owns one before any owns two.
fn spread_names(ns: &str, masters: &[Master], count: usize) -> Vec<String> {
    let mut per_master = vec![0usize; masters.len()];
    let mut names = Vec::new();
    let mut i = 0u64;
    while names.len() < count && i < 1_000_000 {
        let name = format!("q{i}");
        i += 1;
        let slot = cluster_slot(&format!("{{{ns}:{name}}}"));
        let Some(m) = masters.iter().position(|m| owns(m, slot)) else {
            continue;
        };
        let least = per_master.iter().copied().min().unwrap_or(0);
        if per_master[m] == least {
            per_master[m] += 1;
            names.push(name);
        }
    }
    names
}

/// Each master's CPU seconds so far (user + system).
async fn cpu_of(masters: &[Master]) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::new();
    for m in masters {
        let client = redis::Client::open(m.addr.as_str())?;
        let mut c = client
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("connect to {}", drover_queue::connection::redact(&m.addr)))?;
        let info: String = redis::cmd("INFO").arg("cpu").query_async(&mut c).await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        out.push(field("used_cpu_sys:") + field("used_cpu_user:"));
    }
    Ok(out)
}

/// This process's CPU seconds so far, from `/proc/self/stat`.
fn own_cpu_s() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the stat line: 11 and 12 after ')'.
    (ticks(11) + ticks(12)) / 100.0
}

/// Deletes the queue's keys: they share its slot, so one master holds them all.
async fn cleanup_queue(q: &Queue) {
    let pattern = format!(
        "{}*",
        q.keys().prefix.replace('{', "\\{").replace('}', "\\}")
    );
    let mut cursor: u64 = 0;
    loop {
        let r: Result<(u64, Vec<String>), _> = q
            .redis()
            .query_on_slot(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000),
                q.slot(),
            )
            .await;
        let Ok((next, keys)) = r else { return };
        for chunk in keys.chunks(500) {
            let _: Result<i64, _> = q.redis().query(redis::cmd("UNLINK").arg(chunk)).await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}
