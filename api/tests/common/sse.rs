//! What the SSE tests add to the harness: the API set up for them (in-process, or
//! as the real binary), a worker running test jobs whose steps the test releases one
//! by one, and a small Server-Sent Events client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use drover_jobs::config::CommonConfig;
use drover_jobs::connect::Queues;
use drover_jobs::env::Env;
use drover_jobs::events::Event;
use drover_queue::worker::{
    DroverBackend, JobContext, JobError, ProgressMeter, WakeHub, WorkerOptions,
};
use drover_queue::{NewJob, Queue, Redis};
use drover_tests::TestDb;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, oneshot};

use super::{ADMIN, Builder, TestApi};

/// Generous deadline for anything a test waits on.
pub const WAIT: Duration = Duration::from_secs(20);

/// An HTTP client that sends the [`ADMIN`] key with every request, and has no
/// overall timeout (event streams last).
pub fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {ADMIN}")).unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// An API for the SSE tests: the machine's shared Redis, a namespace of its own, no
/// rate limit, development mode, and `extra` settings.
pub async fn start(extra: &[(&str, &str)]) -> TestApi {
    builder(extra).start().await
}

/// Like [`start`], on `target`'s Redis (see `drover_tests::each_target!`).
pub async fn start_at(target: drover_tests::TestTarget, extra: &[(&str, &str)]) -> TestApi {
    builder(extra)
        .redis(drover_tests::url_of(target))
        .start()
        .await
}

/// Like [`start`], on `redis_url` and in namespace `ns` (two APIs may share one).
pub async fn start_on(redis_url: &str, ns: &str, extra: &[(&str, &str)]) -> TestApi {
    builder(extra)
        .redis(redis_url.to_owned())
        .namespace(ns)
        .start()
        .await
}

fn builder(extra: &[(&str, &str)]) -> Builder {
    let mut b = TestApi::builder()
        .env("DROVER_API_RATE_ADMIN", "0")
        .env("DROVER_API_RATE_SUBMITTER", "0")
        .env("DROVER_ENV", "dev");
    for (k, v) in extra {
        b = b.env(k, v);
    }
    b
}

impl TestApi {
    /// `http://addr/api/v1{path}`.
    pub fn v1(&self, path: &str) -> String {
        self.url(&format!("/api/v1{path}"))
    }

    /// `GET /api/v1/sse/status`.
    pub async fn status(&self) -> serde_json::Value {
        client()
            .get(self.url("/api/v1/sse/status"))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .expect("the status endpoint answers 200")
            .json()
            .await
            .unwrap()
    }
}

/// The real `drover-api` binary, on a free loopback port; killed when dropped.
pub struct ApiProc {
    pub addr: SocketAddr,
    proc: drover_tests::procs::Proc,
    _db: TestDb,
}

impl ApiProc {
    /// Starts it on `redis_url`, namespace `ns`, and waits until it answers.
    pub async fn start(redis_url: &str, ns: &str) -> Self {
        let db = TestDb::sqlite();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut vars: Vec<(&str, String)> = vec![
            ("DROVER_API_ADDR", addr.to_string()),
            ("RUST_LOG", "warn".to_owned()),
        ];
        let common = builder(&[]).redis(redis_url.to_owned()).vars(ns, &db);
        vars.extend(common.iter().map(|(k, v)| (k.as_str(), v.clone())));
        let proc = drover_tests::procs::Proc::start_exe(env!("CARGO_BIN_EXE_drover-api"), &vars);
        let url = format!("http://{addr}/health");
        drover_tests::eventually_async(WAIT, "drover-api to answer", || async {
            client()
                .get(&url)
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
        })
        .await;
        Self {
            addr,
            proc,
            _db: db,
        }
    }

    /// Sends SIGTERM and waits for the exit code (panics after `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        self.proc.terminate(timeout)
    }

    /// `http://addr/api/v1{path}`.
    pub fn v1(&self, path: &str) -> String {
        format!("http://{}/api/v1{path}", self.addr)
    }
}

/// Redis and queue handles like the API's.
pub fn handles(common: &CommonConfig) -> (Redis, Queues) {
    let redis = drover_jobs::connect::redis(common).unwrap();
    let queues = Queues::new(&redis, common).unwrap();
    (redis, queues)
}

/// Handles on namespace `ns` of `redis_url`.
pub fn handles_on(redis_url: &str, ns: &str) -> (Redis, Queues) {
    let common = CommonConfig::from_env(&Env::from_pairs([
        ("REDIS_URL", redis_url),
        ("DROVER_REDIS_NAMESPACE", ns),
    ]))
    .unwrap();
    handles(&common)
}

// ---- a worker whose jobs the test drives ------------------------------------------

/// A test job: `steps` units of work, each reported through a [`ProgressMeter`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Steps {
    pub steps: u64,
}

/// Permits for the steps of running jobs: a job takes one before each step after
/// the first and one before it returns, so a test can hold a job mid-way.
#[derive(Clone)]
pub struct StepGate(pub Arc<Semaphore>);

impl StepGate {
    /// A gate that holds every step until released.
    pub fn closed() -> Self {
        Self(Arc::new(Semaphore::new(0)))
    }

    /// A gate that lets everything through.
    pub fn open() -> Self {
        Self(Arc::new(Semaphore::new(Semaphore::MAX_PERMITS / 2)))
    }

    /// Lets one step through.
    pub fn release(&self) {
        self.0.add_permits(1);
    }
}

async fn run_steps(
    job: Steps,
    ctx: JobContext,
    gate: Data<StepGate>,
) -> Result<serde_json::Value, JobError> {
    let mut meter = ProgressMeter::new(ctx, Some(job.steps))
        .label("testing")
        .every(Duration::ZERO);
    for i in 0..job.steps {
        if i > 0 {
            gate.0
                .0
                .acquire()
                .await
                .map_err(JobError::permanent)?
                .forget();
        }
        meter.add(1);
    }
    gate.0
        .0
        .acquire()
        .await
        .map_err(JobError::permanent)?
        .forget();
    Ok(serde_json::json!({ "steps": job.steps }))
}

/// An apalis worker on one queue, stopped when dropped.
pub struct Worker {
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Starts a worker running [`Steps`] jobs of `queue` through `gate`.
pub fn worker(redis: &Redis, ns: &str, queue: &Queue, gate: &StepGate) -> Worker {
    let hub = WakeHub::start(redis.clone(), ns);
    let opts = WorkerOptions {
        lease: Duration::from_secs(5),
        rescue_interval: Duration::from_millis(500),
        heartbeat_interval: Duration::from_millis(500),
        poll_interval: Duration::from_millis(200),
        progress_interval: Duration::from_millis(10),
        close_timeout: Duration::from_secs(2),
        ..WorkerOptions::with_concurrency(4)
    };
    let backend = DroverBackend::<Steps>::new(queue.clone(), hub, opts.clone());
    let w = WorkerBuilder::new(backend.worker_id().to_owned())
        .backend(backend)
        .data(gate.clone())
        .concurrency(opts.concurrency)
        .build(run_steps);
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = w
            .run_until(async move {
                let _ = rx.await;
                Ok::<(), std::io::Error>(())
            })
            .await;
    });
    Worker { stop: Some(tx) }
}

/// Enqueues a [`Steps`] job; returns its id.
pub async fn enqueue(queue: &Queue, steps: u64) -> String {
    queue
        .enqueue(NewJob::new(&Steps { steps }).unwrap())
        .await
        .unwrap()
        .id
}

/// Every event of job `id` the stream holds, in order.
pub async fn job_events(queue: &Queue, id: &str) -> Vec<Event> {
    queue
        .events_after("0", 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.job_id == id)
        .collect()
}

// ---- a Server-Sent Events client ----------------------------------------------------

/// One message read from an event stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Msg {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
    /// A comment-only block (a keep-alive).
    pub comment: bool,
}

impl Msg {
    /// The `data:` as an [`Event`].
    pub fn parsed(&self) -> Event {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {:?}", self.data))
    }

    /// The `data:` as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

/// Parses the complete blocks at the front of `buf`, leaving a partial one.
pub fn parse_blocks(buf: &mut String) -> Vec<Msg> {
    let mut out = Vec::new();
    while let Some(end) = buf.find("\n\n") {
        let block: String = buf.drain(..end + 2).collect();
        let mut m = Msg::default();
        let mut data: Vec<&str> = Vec::new();
        let mut fields = 0;
        for line in block.lines() {
            if line.is_empty() || line.starts_with(':') {
                continue;
            }
            let (k, v) = line.split_once(':').unwrap_or((line, ""));
            let v = v.strip_prefix(' ').unwrap_or(v);
            fields += 1;
            match k {
                "event" => m.event = v.to_owned(),
                "id" => m.id = Some(v.to_owned()),
                "data" => data.push(v),
                _ => {}
            }
        }
        m.data = data.join("\n");
        m.comment = fields == 0;
        if m.event.is_empty() && !m.comment {
            m.event = "message".to_owned();
        }
        out.push(m);
    }
    out
}

/// A client reading one event stream.
pub struct Sse {
    pub status: u16,
    body: Option<futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>>,
    buf: String,
    pending: std::collections::VecDeque<Msg>,
}

impl Sse {
    /// Opens `url`, sending `last_event_id` if given; returns once the response
    /// head has arrived (the server has subscribed the client by then).
    pub async fn open(url: &str, last_event_id: Option<&str>) -> Self {
        Self::open_with(url, ADMIN, last_event_id).await
    }

    /// Like [`Sse::open`], with API key `key`.
    pub async fn open_with(url: &str, key: &str, last_event_id: Option<&str>) -> Self {
        let mut req = reqwest::Client::new().get(url).bearer_auth(key);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = tokio::time::timeout(WAIT, req.send())
            .await
            .expect("response head in time")
            .unwrap();
        let status = resp.status().as_u16();
        Self {
            status,
            body: Some(resp.bytes_stream().boxed()),
            buf: String::new(),
            pending: Default::default(),
        }
    }

    /// The next message, keep-alives included; `None` once the stream has ended.
    /// Panics if nothing comes within [`WAIT`].
    pub async fn next_any(&mut self) -> Option<Msg> {
        loop {
            if let Some(m) = self.pending.pop_front() {
                return Some(m);
            }
            let body = self.body.as_mut()?;
            let chunk = tokio::time::timeout(WAIT, body.next())
                .await
                .expect("an SSE message in time");
            match chunk {
                Some(Ok(bytes)) => {
                    self.buf.push_str(std::str::from_utf8(&bytes).unwrap());
                    self.pending.extend(parse_blocks(&mut self.buf));
                }
                Some(Err(e)) => panic!("reading the event stream: {e}"),
                None => {
                    self.body = None;
                    return None;
                }
            }
        }
    }

    /// The next event (keep-alives skipped); `None` once the stream has ended.
    pub async fn next(&mut self) -> Option<Msg> {
        loop {
            match self.next_any().await {
                Some(m) if m.comment => continue,
                other => return other,
            }
        }
    }

    /// Reads events until one satisfies `stop` (returned last) or the stream ends.
    pub async fn until(&mut self, mut stop: impl FnMut(&Msg) -> bool) -> Vec<Msg> {
        let mut out = Vec::new();
        while let Some(m) = self.next().await {
            let done = stop(&m);
            out.push(m);
            if done {
                break;
            }
        }
        out
    }

    /// Reads every event until the stream ends.
    pub async fn rest(&mut self) -> Vec<Msg> {
        self.until(|_| false).await
    }

    /// Whether the stream has ended.
    pub fn ended(&self) -> bool {
        self.body.is_none() && self.pending.is_empty()
    }
}

/// The `rows_done` of a progress message, if it is one.
pub fn rows_done(m: &Msg) -> Option<u64> {
    (m.event == "job:progress").then(|| m.json()["data"]["rows_done"].as_u64())?
}
