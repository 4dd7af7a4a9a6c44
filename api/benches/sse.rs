//! Server-Sent Events at scale: one real `drover-api` process, thousands of SSE clients
//! on loopback, events appended to a queue's stream at a steady rate.
//!
//! Measures, for every event at every client, the time from its append in Redis to
//! its arrival at the client (p50, p99, max), and the API's resident memory per
//! connected client (`VmRSS` of the API process before and after the clients
//! connect, and after the events flowed).
//!
//! ```text
//! ulimit -n 20000   # each side holds one socket per client
//! cargo bench -p drover-api --bench sse -- --clients 10000 --events 200 --rate 10
//! ```
//!
//! `--burst <k>` appends `k` events back to back at each of the `--rate` ticks (the
//! relay then reads several at once, as it does when a job reports quickly).
//!
//! It starts a `redis-server` of its own (no persistence) and a SQLite file in a
//! temporary directory, and gives the API an admin key of its own (in
//! `DROVER_API_KEYS`, with no rate limit and a per-key stream cap above `--clients`),
//! which every client sends. Everything stays on 127.0.0.1. It stops at the first
//! client that is refused or whose stream drops, with that client's reason, and
//! otherwise within `--timeout` (300 s). To profile an API started by hand (under
//! `heaptrack`, say), give `--attach <addr> --redis <url> --pid <pid> --key <admin
//! key>`; it must use namespace `bench`, and allow the key that many streams.
//!
//! CI runs it small (`cargo test -p drover-api --bench sse -- --clients 200 --events
//! 20`, a debug build) as a smoke test that it still works end to end, not for its
//! figures.
//!
//! The clients speak raw HTTP/1.1 (one task each, no client library), so that the
//! client side costs little of the machine the API shares with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use drover_jobs::QueueName;
use drover_jobs::config::CommonConfig;
use drover_jobs::connect::Queues;
use drover_jobs::env::Env;
use drover_jobs::events::EventType;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

struct Args {
    clients: usize,
    events: usize,
    rate: f64,
    /// Events appended back to back at each tick: a burst the relay reads at once.
    burst: usize,
    timeout: Duration,
    /// Measure an API that is already running (under a profiler, say): its address,
    /// its Redis and its pid. Its namespace must be `bench`.
    attach: Option<(std::net::SocketAddr, String, u32)>,
    /// The key the clients send (generated unless attached).
    key: Option<String>,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        clients: 10_000,
        events: 200,
        rate: 10.0,
        burst: 1,
        timeout: Duration::from_secs(300),
        attach: None,
        key: None,
    };
    let (mut addr, mut redis, mut pid) = (None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().context("a value after each option");
        match k.as_str() {
            "--clients" => a.clients = v()?.parse()?,
            "--events" => a.events = v()?.parse()?,
            "--rate" => a.rate = v()?.parse()?,
            "--burst" => a.burst = v()?.parse()?,
            "--timeout" => a.timeout = Duration::from_secs(v()?.parse()?),
            "--attach" => addr = Some(v()?.parse()?),
            "--redis" => redis = Some(v()?),
            "--pid" => pid = Some(v()?.parse()?),
            "--key" => a.key = Some(v()?),
            // cargo bench passes --bench; ignore what is not ours.
            _ => {}
        }
    }
    if let Some(addr) = addr {
        a.attach = Some((
            addr,
            redis.context("--attach needs --redis")?,
            pid.context("--attach needs --pid")?,
        ));
        if a.key.is_none() {
            bail!("--attach needs --key (an admin key of that API)");
        }
    }
    if a.clients == 0 || a.events == 0 || a.rate <= 0.0 || a.burst == 0 {
        bail!("--clients, --events, --rate and --burst must be positive");
    }
    Ok(a)
}

fn open_files_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(1024)
}

/// `VmRSS` of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// User and system CPU time of a process so far, in ms.
fn cpu_ms(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let tick_ms = 10; // USER_HZ is 100 on Linux.
    (
        f.get(11).copied().unwrap_or(0) * tick_ms,
        f.get(12).copied().unwrap_or(0) * tick_ms,
    )
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1).map(|s| s.trim().to_owned()))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().next().and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .map_or(0, |kib| kib / 1024 / 1024);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    format!("{cores} cores ({cpu}), {mem} GiB, Linux {kernel}")
}

/// One client: connect, subscribe, then record the latency of every event until the
/// last one. A refusal, or a stream that ends or drops before the last event, is an
/// error that says so.
async fn client(
    addr: std::net::SocketAddr,
    key: Arc<str>,
    sent: Arc<Vec<AtomicU64>>,
    base: Instant,
    connected: Arc<AtomicUsize>,
    last: usize,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> anyhow::Result<Vec<u32>> {
    let mut s = TcpStream::connect(addr)
        .await
        .context("connect to the API")?;
    let request = format!(
        "GET /api/v1/sse/events?queue=export HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\nAuthorization: Bearer {key}\r\n\r\n"
    );
    s.write_all(request.as_bytes()).await?;
    let mut buf: Vec<u8> = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    // The response head.
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            bail!("closed before the response head");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            if !buf.starts_with(b"HTTP/1.1 200") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let rest = String::from_utf8_lossy(&buf[end + 4..]).into_owned();
                bail!(
                    "the API refused the stream: {} {}",
                    head.lines().next().unwrap_or(""),
                    rest.trim()
                );
            }
            buf.drain(..end + 4);
            break;
        }
    }
    connected.fetch_add(1, Ordering::Relaxed);
    // Subscribed: let the next client connect.
    drop(permit);
    let mut lat = Vec::with_capacity(last + 1);
    let mut body = Dechunk::default();
    let mut text: Vec<u8> = Vec::with_capacity(1024);
    let mut input = buf;
    loop {
        body.feed(&input, &mut text);
        input.clear();
        // Whole lines only: a read may end inside one.
        let mut start = 0;
        while let Some(nl) = text[start..].iter().position(|b| *b == b'\n') {
            let line = &text[start..start + nl];
            if let Some(seq) = line
                .strip_prefix(b"data: ")
                .and_then(|d| field(d, b"\"message\":\""))
            {
                let at = sent.get(seq).map_or(0, |t| t.load(Ordering::Acquire));
                let now = base.elapsed().as_nanos() as u64;
                lat.push(u32::try_from(now.saturating_sub(at) / 1000).unwrap_or(u32::MAX));
                if seq == last {
                    return Ok(lat);
                }
            }
            start += nl + 1;
        }
        text.drain(..start);
        if body.done {
            bail!(
                "the stream ended after {} of {} events",
                lat.len(),
                last + 1
            );
        }
        let n = s.read(&mut chunk).await.with_context(|| {
            format!(
                "the stream dropped after {} of {} events",
                lat.len(),
                last + 1
            )
        })?;
        if n == 0 {
            bail!(
                "the API closed the connection after {} of {} events",
                lat.len(),
                last + 1
            );
        }
        input.extend_from_slice(&chunk[..n]);
    }
}

/// Decodes `Transfer-Encoding: chunked`: a chunk may end anywhere, even inside an
/// event, so the SSE text is read from the decoded bytes only.
#[derive(Default)]
struct Dechunk {
    /// Bytes left in the current chunk's data.
    left: usize,
    /// The size line being read.
    size: Vec<u8>,
    /// The CRLF after a chunk's data is still to skip.
    crlf: usize,
    done: bool,
}

impl Dechunk {
    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() {
            if self.crlf > 0 {
                let n = self.crlf.min(input.len());
                self.crlf -= n;
                input = &input[n..];
            } else if self.left > 0 {
                let n = self.left.min(input.len());
                out.extend_from_slice(&input[..n]);
                self.left -= n;
                input = &input[n..];
                if self.left == 0 {
                    self.crlf = 2;
                }
            } else {
                let Some(nl) = input.iter().position(|b| *b == b'\n') else {
                    self.size.extend_from_slice(input);
                    return;
                };
                self.size.extend_from_slice(&input[..nl]);
                input = &input[nl + 1..];
                let line = String::from_utf8_lossy(&self.size).trim().to_owned();
                self.size.clear();
                let hex = line.split(';').next().unwrap_or("");
                match usize::from_str_radix(hex, 16) {
                    Ok(0) => {
                        self.done = true;
                        return;
                    }
                    Ok(n) => self.left = n,
                    Err(_) => {}
                }
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The number in `"message":"<n>"`.
fn field(data: &[u8], key: &[u8]) -> Option<usize> {
    let at = find(data, key)? + key.len();
    let rest = &data[at..];
    let end = rest.iter().position(|b| *b == b'"')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let need = args.clients as u64 + 256;
    let limit = open_files_limit();
    if limit < need {
        bail!(
            "{} clients need {need} open files and the limit is {limit}: run `ulimit -n {need}` first (hard limit: `ulimit -Hn`)",
            args.clients
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

/// The first client failure, and how many there were: the run stops at the first.
#[derive(Default)]
struct Failures {
    count: AtomicUsize,
    first: std::sync::Mutex<Option<String>>,
}

impl Failures {
    fn record(&self, e: &anyhow::Error) {
        if self.count.fetch_add(1, Ordering::AcqRel) == 0
            && let Ok(mut f) = self.first.lock()
        {
            *f = Some(format!("{e:#}"));
        }
    }

    /// An error naming the first failure, if there was one.
    fn check(&self, when: &str) -> anyhow::Result<()> {
        let n = self.count.load(Ordering::Acquire);
        if n == 0 {
            return Ok(());
        }
        let first = self
            .first
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .unwrap_or_default();
        bail!("{n} client(s) failed {when}; the first: {first}")
    }
}

/// A key no one else knows.
fn new_key() -> String {
    format!(
        "bench-{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// Polls `done` every 20 ms until it holds, a client fails, or `deadline` passes.
async fn wait_for(
    what: &str,
    deadline: Instant,
    failures: &Failures,
    mut done: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    loop {
        failures.check(what)?;
        if done() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let ns = "bench";
    // Our own Redis and API, unless told to measure running ones.
    let mut own = None;
    let key: Arc<str> = args.key.clone().unwrap_or_else(new_key).into();
    let (addr, redis_url, pid) = match args.attach.clone() {
        Some(a) => a,
        None => {
            let redis = drover_tests::TestRedis::start();
            let db = drover_tests::TestDb::sqlite();
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let api = drover_tests::procs::Proc::start_exe(
                env!("CARGO_BIN_EXE_drover-api"),
                &[
                    ("DROVER_API_ADDR", addr.to_string()),
                    ("REDIS_URL", redis.url()),
                    ("DROVER_REDIS_NAMESPACE", ns.to_owned()),
                    ("DATABASE_URL", db.url().to_owned()),
                    ("DROVER_ENV", "dev".to_owned()),
                    ("RUST_LOG", "warn".to_owned()),
                    ("DROVER_API_KEYS", format!("admin:{key}")),
                    // Every client is one request of the same key, all at once.
                    ("DROVER_API_RATE_ADMIN", "0".to_owned()),
                    ("DROVER_SSE_MAX_CLIENTS", (args.clients + 100).to_string()),
                    (
                        "DROVER_SSE_MAX_STREAMS_PER_KEY",
                        (args.clients + 100).to_string(),
                    ),
                ],
            );
            let (url, pid) = (redis.url(), api.pid());
            own = Some((api, redis, db));
            (addr, url, pid)
        }
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let health = format!("http://{addr}/health");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http
        .get(&health)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        if Instant::now() > deadline {
            bail!("drover-api did not come up");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The key works (and is an admin key: the status below needs one).
    let status_url = format!("http://{addr}/api/v1/sse/status");
    let r = http.get(&status_url).bearer_auth(&*key).send().await?;
    if !r.status().is_success() {
        let code = r.status();
        bail!(
            "the API refused the bench's key on /sse/status: {code} {}",
            r.text().await.unwrap_or_default()
        );
    }
    let common = CommonConfig::from_env(&Env::from_pairs([
        ("REDIS_URL", redis_url.clone()),
        ("DROVER_REDIS_NAMESPACE", ns.to_owned()),
    ]))?;
    let rconn = drover_jobs::connect::redis(&common)?;
    let queues = Queues::new(&rconn, &common)?;
    let queue = queues.get(QueueName::Export).clone();

    let base = Instant::now();
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..args.events).map(|_| AtomicU64::new(0)).collect());
    let connected = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Failures::default());
    let last = args.events - 1;

    // Warm up the API's paths with one client and one event, so the baseline holds
    // what any API process holds once it has served SSE.
    {
        let warm = Arc::new(AtomicUsize::new(0));
        let one: Arc<Vec<AtomicU64>> = Arc::new(vec![AtomicU64::new(0)]);
        let h = tokio::spawn(client(
            addr,
            Arc::clone(&key),
            one,
            base,
            Arc::clone(&warm),
            0,
            None,
        ));
        let deadline = Instant::now() + Duration::from_secs(30);
        while warm.load(Ordering::Relaxed) == 0 {
            if h.is_finished() {
                h.await?.context("the warm-up client")?;
                bail!("the warm-up client ended before it subscribed");
            }
            if Instant::now() > deadline {
                bail!("the warm-up client did not subscribe within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        queue
            .append_event(EventType::JobProgress, "bench", "0", &serde_json::json!({}))
            .await?;
        tokio::time::timeout(Duration::from_secs(30), h)
            .await
            .context("the warm-up event did not arrive within 30 s")??
            .context("the warm-up client")?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = rss_kib(pid);

    println!("connecting {} clients…", args.clients);
    let started = Instant::now();
    let deadline = Instant::now() + args.timeout;
    let sem = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        failures.check("to subscribe")?;
        let permit = tokio::time::timeout_at(deadline.into(), Arc::clone(&sem).acquire_owned())
            .await
            .context("timed out connecting the clients")??;
        let (sent, connected, failures) = (
            Arc::clone(&sent),
            Arc::clone(&connected),
            Arc::clone(&failures),
        );
        let c = client(
            addr,
            Arc::clone(&key),
            sent,
            base,
            connected,
            last,
            Some(permit),
        );
        tasks.push(tokio::spawn(async move {
            let r = c.await;
            if let Err(e) = &r {
                failures.record(e);
            }
            r
        }));
    }
    wait_for("to subscribe", deadline, &failures, || {
        connected.load(Ordering::Relaxed) >= args.clients
    })
    .await?;
    let connect_s = started.elapsed().as_secs_f64();
    let status: serde_json::Value = http
        .get(&status_url)
        .bearer_auth(&*key)
        .send()
        .await?
        .json()
        .await?;
    let server_clients = status["clients"]["total"].as_u64().unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss1 = rss_kib(pid);
    println!(
        "{} clients connected in {connect_s:.1} s (the API counts {server_clients}); publishing {} events, {} at a time, {} times a second…",
        args.clients, args.events, args.burst, args.rate
    );

    let (user0, sys0) = cpu_ms(pid);
    let (cuser0, csys0) = cpu_ms(std::process::id());
    let load = load_average();
    let every = Duration::from_secs_f64(1.0 / args.rate);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for seq in 0..args.events {
        if seq % args.burst == 0 {
            tick.tick().await;
            failures.check("while the events flowed")?;
        }
        sent[seq].store(base.elapsed().as_nanos() as u64, Ordering::Release);
        queue
            .append_event(
                EventType::JobProgress,
                "bench",
                &seq.to_string(),
                &serde_json::json!({ "rows_done": seq }),
            )
            .await?;
    }
    // Every client ends at the last event; one that has not got it 30 s after it was
    // published is stuck.
    let end = deadline.min(Instant::now() + Duration::from_secs(30));
    wait_for("to receive every event", end, &failures, || {
        tasks.iter().all(tokio::task::JoinHandle::is_finished)
    })
    .await?;
    let mut lat: Vec<u32> = Vec::with_capacity(args.clients * args.events);
    for t in tasks {
        lat.extend(t.await??);
    }
    let rss2 = rss_kib(pid);
    let (user1, sys1) = cpu_ms(pid);
    let (cuser1, csys1) = cpu_ms(std::process::id());
    lat.sort_unstable();
    let expected = args.clients * args.events;
    let per_client = |after: u64| (after.saturating_sub(rss0) as f64) / args.clients as f64;
    println!();
    println!(
        "machine: {} (load average {load} before the events)",
        machine()
    );
    println!(
        "clients: {}  events: {} in bursts of {} at {}/s  deliveries: {} of {}",
        args.clients,
        args.events,
        args.burst,
        args.rate,
        lat.len(),
        expected,
    );
    println!(
        "latency append→client (ms): p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        percentile(&lat, 50.0),
        percentile(&lat, 90.0),
        percentile(&lat, 99.0),
        percentile(&lat, 99.9),
        percentile(&lat, 100.0)
    );
    let deliveries = lat.len().max(1) as f64;
    println!(
        "API CPU during the events: {} ms user + {} ms system = {:.1} µs per delivery",
        user1 - user0,
        sys1 - sys0,
        ((user1 - user0) + (sys1 - sys0)) as f64 * 1000.0 / deliveries
    );
    println!(
        "bench clients' CPU meanwhile: {} ms user + {} ms system = {:.1} µs per delivery",
        cuser1 - cuser0,
        csys1 - csys0,
        ((cuser1 - cuser0) + (csys1 - csys0)) as f64 * 1000.0 / deliveries
    );
    println!(
        "API RSS: {} MiB before, {} MiB with clients connected, {} MiB after the events",
        rss0 / 1024,
        rss1 / 1024,
        rss2 / 1024
    );
    println!(
        "API memory per client: {:.1} KiB connected, {:.1} KiB after the events",
        per_client(rss1),
        per_client(rss2)
    );
    drop(own);
    if lat.len() < expected {
        bail!("{} deliveries missing", expected - lat.len());
    }
    Ok(())
}
