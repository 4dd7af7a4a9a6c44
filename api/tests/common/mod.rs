//! The API's test harness: the real API on port 0, over a real Redis (the machine's, in
//! a namespace of the test's own, or a `TestRedis`) and a fresh database, talked to
//! over HTTP; and an in-process worker to move jobs through their states. What the
//! event-stream tests add (an SSE client, a worker whose steps they release) is in
//! [`sse`].
#![allow(dead_code, clippy::unwrap_used)]

pub mod sse;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use drover_api::config::ApiConfig;
use drover_jobs::QueueName;
use drover_jobs::connect::Queues;
use drover_jobs::env::Env;
use drover_queue::worker::{DroverBackend, JobContext, JobError, WakeHub, WorkerOptions};
use drover_queue::{JobRecord, Queue, Redis};
use drover_tests::TestDb;
use poem::listener::{Acceptor, Listener, TcpListener};
use serde_json::Value;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;

/// The admin key every test API knows.
pub const ADMIN: &str = "test-admin-key-0123456789";
/// The submitter key every test API knows.
pub const SUBMITTER: &str = "test-submitter-key-0123456789";
/// How long a test waits for something to happen.
pub const T: Duration = Duration::from_secs(15);

/// Logs to the output when `RUST_LOG` is set.
pub fn init_logs() {
    if let Ok(filter) = std::env::var("RUST_LOG") {
        drover_jobs::telemetry::init_tracing(drover_jobs::telemetry::LogFormat::Pretty, &filter);
    }
}

/// How to start a test API.
pub struct Builder {
    db: Option<TestDb>,
    redis_url: String,
    namespace: Option<String>,
    env: Vec<(String, String)>,
}

impl Builder {
    /// Uses this database instead of a fresh SQLite file.
    pub fn db(mut self, db: TestDb) -> Self {
        self.db = Some(db);
        self
    }

    /// Uses this Redis instead of the machine's.
    pub fn redis(mut self, url: String) -> Self {
        self.redis_url = url;
        self
    }

    /// Uses this namespace instead of a fresh one (two APIs may share one).
    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.to_owned());
        self
    }

    /// Sets an environment variable of the API's configuration.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    /// The configuration the API would start with.
    pub fn config(&self, namespace: &str, db: &TestDb) -> Result<ApiConfig, String> {
        ApiConfig::from_env(&Env::from_pairs(self.vars(namespace, db))).map_err(|e| e.to_string())
    }

    /// The environment the API would start with (also that of a real `drover-api`).
    pub fn vars(&self, namespace: &str, db: &TestDb) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = vec![
            ("REDIS_URL".into(), self.redis_url.clone()),
            ("DROVER_REDIS_NAMESPACE".into(), namespace.to_owned()),
            ("DATABASE_URL".into(), db.url().to_owned()),
            (
                "DROVER_API_KEYS".into(),
                format!("admin:{ADMIN},submitter:{SUBMITTER}"),
            ),
            ("DROVER_REDIS_TIMEOUT_MS".into(), "2000".into()),
            ("DROVER_REDIS_CONNECT_TIMEOUT_MS".into(), "500".into()),
            // High enough never to get in a test's way; the limiter still runs.
            ("DROVER_API_RATE_SUBMITTER".into(), "100000".into()),
            ("DROVER_API_RATE_ADMIN".into(), "100000".into()),
            ("DROVER_API_AUTH_FAILURES".into(), "100000".into()),
        ];
        for (k, v) in &self.env {
            pairs.retain(|(pk, _)| pk != k);
            pairs.push((k.clone(), v.clone()));
        }
        pairs
    }

    /// Starts the API; panics if it does not come up.
    pub async fn start(self) -> TestApi {
        self.try_start().await.unwrap()
    }

    /// Starts the API, or says why it stopped at start.
    pub async fn try_start(mut self) -> Result<TestApi, String> {
        init_logs();
        let namespace = self
            .namespace
            .take()
            .unwrap_or_else(drover_tests::namespace);
        let db = self.db.take().unwrap_or_else(TestDb::sqlite);
        let config = self.config(&namespace, &db)?;
        let redis = drover_jobs::connect::redis(&config.common).unwrap();
        let queues = Queues::new(&redis, &config.common).unwrap();
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let mut task = tokio::spawn(drover_api::serve_on(config.clone(), acceptor, async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let base = format!("http://{addr}");
        // Up once /health answers; or the task ended (it failed at start).
        let health = format!("{base}/health");
        let up = async {
            drover_tests::eventually_async(T, "the API to come up", || async {
                client.get(&health).send().await.ok().map(drop)
            })
            .await;
        };
        tokio::select! {
            res = &mut task => {
                return Err(match res {
                    Ok(Ok(())) => "the API stopped at start".to_owned(),
                    Ok(Err(e)) => format!("{e:#}"),
                    Err(e) => e.to_string(),
                });
            }
            () = up => {}
        }
        let dbc = drover_jobs::connect::database(db.url()).await.unwrap();
        Ok(TestApi {
            addr,
            base,
            client,
            namespace,
            redis,
            queues,
            dbc,
            config,
            db: Some(db),
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A running API.
pub struct TestApi {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub namespace: String,
    pub redis: Redis,
    pub queues: Queues,
    /// A connection of the test's own to the API's database.
    pub dbc: sea_orm::DatabaseConnection,
    pub config: ApiConfig,
    db: Option<TestDb>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApi {
    /// An API on the machine's Redis and a fresh SQLite database.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// An API on `target`'s Redis (see `drover_tests::each_target!`) and a fresh
    /// SQLite database.
    pub async fn on(target: drover_tests::TestTarget) -> Self {
        Self::builder_on(target).start().await
    }

    /// A builder for an API on `target`'s Redis.
    pub fn builder_on(target: drover_tests::TestTarget) -> Builder {
        Builder {
            redis_url: drover_tests::url_of(target),
            ..Self::builder()
        }
    }

    pub fn builder() -> Builder {
        Builder {
            db: None,
            redis_url: drover_tests::shared_redis_url(),
            namespace: None,
            env: Vec::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with `key` as its bearer token.
    pub fn req(&self, method: reqwest::Method, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(key)
    }

    pub async fn get(&self, path: &str, key: &str) -> Reply {
        Reply::of(
            self.req(reqwest::Method::GET, path, key)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Reply {
        Reply::of(
            self.req(reqwest::Method::POST, path, key)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn delete(&self, path: &str, key: &str) -> Reply {
        Reply::of(
            self.req(reqwest::Method::DELETE, path, key)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Submits `payload` to `queue` with `options`; panics unless it is created.
    pub async fn submit(&self, queue: &str, payload: Value, options: Value) -> String {
        let r = self
            .post(
                &format!("/api/v1/queues/{queue}/jobs"),
                SUBMITTER,
                serde_json::json!({ "payload": payload, "options": options }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// Submits a cleanup job with `key`; the status (an error must be the envelope).
    pub async fn submit_with(&self, key: &str) -> u16 {
        let r = self
            .post(
                "/api/v1/queues/cleanup/jobs",
                key,
                serde_json::json!({ "payload": {} }),
            )
            .await;
        if r.status >= 400 {
            r.code();
        }
        r.status
    }

    pub fn queue(&self, name: QueueName) -> &Queue {
        self.queues.get(name)
    }

    /// Jobs in every state of every queue.
    pub async fn total_jobs(&self) -> u64 {
        let mut n = 0;
        for (_, q) in self.queues.all() {
            let c = q.overview().await.unwrap().counts;
            n += c.waiting + c.delayed + c.active + c.completed + c.failed;
        }
        n
    }

    /// Stops the API gracefully; returns its database, for another API to use.
    pub async fn stop(mut self) -> TestDb {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(T, t).await.unwrap().unwrap().unwrap();
        }
        self.db.take().unwrap()
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub async fn of(r: reqwest::Response) -> Self {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error code of an error response; panics if it is not the error envelope.
    pub fn code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error envelope: {} {}", self.status, self.body))
    }

    /// `error.details.field` of a 400.
    pub fn field(&self) -> &str {
        self.body["error"]["details"]["field"]
            .as_str()
            .unwrap_or("")
    }

    /// Asserts the status and the error code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.code(), code, "{}", self.body);
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
    }
}

/// A cleanup payload the test worker completes.
pub fn ok_payload() -> Value {
    serde_json::json!({ "dry_run": false })
}

/// A cleanup payload the test worker fails for good.
pub fn failing_payload() -> Value {
    serde_json::json!({ "dry_run": true })
}

/// A cleanup payload the test worker holds until the gate lets it through.
pub fn blocking_payload() -> Value {
    serde_json::json!({ "dry_run": false, "retention": { "completed_hours": 1 } })
}

/// Lets blocked jobs of the test worker finish: one permit each.
#[derive(Clone)]
pub struct Gate(pub Arc<Semaphore>);

async fn handle(payload: Value, ctx: JobContext, gate: Data<Gate>) -> Result<Value, JobError> {
    if payload["dry_run"] == Value::Bool(true) {
        return Err(JobError::permanent("planned failure"));
    }
    if payload["retention"]["completed_hours"] == 1 {
        let _permit = gate.0.0.acquire().await.map_err(JobError::permanent)?;
    }
    Ok(serde_json::json!({ "ok": true, "attempt": ctx.attempt() }))
}

/// An apalis worker on a queue of the test API, running [`handle`].
pub struct TestWorker {
    pub gate: Gate,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), WorkerError>>>,
    _hub: WakeHub,
}

impl TestWorker {
    pub fn start(api: &TestApi, queue: QueueName) -> Self {
        let hub = WakeHub::start(api.redis.clone(), &api.namespace);
        let opts = WorkerOptions {
            heartbeat_interval: Duration::from_millis(200),
            rescue_interval: Duration::from_millis(200),
            poll_interval: Duration::from_millis(200),
            ..WorkerOptions::with_concurrency(4)
        };
        let backend = DroverBackend::<Value>::new(api.queue(queue).clone(), hub.clone(), opts);
        let gate = Gate(Arc::new(Semaphore::new(0)));
        let worker = WorkerBuilder::new(backend.worker_id().to_owned())
            .backend(backend)
            .data(gate.clone())
            .concurrency(4)
            .build(handle);
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            worker
                .run_until(async move {
                    let _ = rx.await;
                    Ok::<(), std::io::Error>(())
                })
                .await
        });
        Self {
            gate,
            stop: Some(tx),
            handle: Some(handle),
            _hub: hub,
        }
    }

    /// Stops it, letting blocked jobs through first.
    pub async fn stop(mut self) {
        self.gate.0.add_permits(1000);
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(T, h).await;
        }
    }
}

/// Waits until job `id` of `queue` is in `state`, and returns it.
pub async fn wait_state(queue: &Queue, id: &str, state: drover_queue::JobState) -> JobRecord {
    drover_tests::eventually_async(T, &format!("job {id} to be {state}"), || async {
        queue.get(id).await.unwrap().filter(|j| j.state == state)
    })
    .await
}
