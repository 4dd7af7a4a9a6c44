//! A handle on one queue: enqueue, read, and the admin operations.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Value;
use redis::streams::StreamRangeReply;
use serde::Serialize;

use crate::connection::{Redis, Traffic};
use crate::error::{QueueError, Result};
use crate::events::{Event, EventType, StreamPos};
use crate::job::{JobRecord, JobState};
use crate::keys::Keys;
use crate::options::{DEFAULT_IDEMPOTENCY_TTL, JobOptions, QueueDefaults};
use crate::scripts;

/// Most jobs sent to Redis in one enqueue script call; larger batches are split.
const ENQUEUE_CHUNK: usize = 1000;
/// Most jobs one clean script call removes; larger limits loop.
const CLEAN_CHUNK: u64 = 1000;
/// Largest page of a job listing.
pub const MAX_PAGE: usize = 1000;

/// The hash an idempotency claim keeps of its job's payload: the first 16 bytes of its
/// SHA-256, in hex. A replay with another payload is then told apart from a retry.
fn payload_hash(payload: &str) -> String {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(payload.as_bytes());
    d[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Settings shared by every handle on a queue, whichever process holds it.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// The event stream keeps about this many events.
    pub events_maxlen: u64,
    /// Per-minute counters are kept this long.
    pub stats_window: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            events_maxlen: 10_000,
            stats_window: Duration::from_secs(48 * 3600),
        }
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The payload, as JSON text.
    pub payload: String,
    pub options: JobOptions,
    /// The id of the request that submitted it, carried into the worker's logs.
    pub request_id: Option<String>,
    /// The W3C `traceparent` it was submitted under: each attempt's span is its child.
    pub traceparent: Option<String>,
    /// The API key that submitted it (`api_keys.id`): a submitter key reads only the
    /// jobs it submitted.
    pub submitter: Option<i64>,
}

impl NewJob {
    /// A job with this payload and default options.
    pub fn new(payload: &impl Serialize) -> Result<Self> {
        Ok(Self::raw(serde_json::to_string(payload)?))
    }

    /// A job whose payload is already JSON text.
    #[must_use]
    pub fn raw(payload: String) -> Self {
        Self {
            payload,
            options: JobOptions::default(),
            request_id: None,
            traceparent: None,
            submitter: None,
        }
    }

    /// The same job, submitted by API key `key_id`.
    #[must_use]
    pub fn with_submitter(mut self, key_id: i64) -> Self {
        self.submitter = Some(key_id);
        self
    }

    /// The same job with these options.
    #[must_use]
    pub fn with_options(mut self, options: JobOptions) -> Self {
        self.options = options;
        self
    }

    /// The same job tagged with the request that submitted it.
    #[must_use]
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// The same job in the trace of this W3C `traceparent`; a malformed one is dropped.
    #[must_use]
    pub fn with_traceparent(mut self, traceparent: impl Into<String>) -> Self {
        let tp = traceparent.into();
        self.traceparent = crate::trace::is_traceparent(&tp).then_some(tp);
        self
    }
}

/// The answer to an enqueue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    /// The job's id (a ULID), or the first job's id for a repeated idempotency key.
    pub id: String,
    /// False when an earlier job owned the idempotency key and nothing was created.
    pub created: bool,
    /// The earlier job that owns the idempotency key was enqueued with another payload:
    /// the key was reused for a different request (nothing was created).
    pub payload_differs: bool,
}

/// Jobs per state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub waiting: u64,
    pub delayed: u64,
    pub active: u64,
    pub completed: u64,
    pub failed: u64,
}

impl Counts {
    /// The count of one state.
    #[must_use]
    pub fn get(&self, state: JobState) -> u64 {
        match state {
            JobState::Waiting => self.waiting,
            JobState::Delayed => self.delayed,
            JobState::Active => self.active,
            JobState::Completed => self.completed,
            JobState::Failed => self.failed,
        }
    }
}

/// Counts, pause state and latency of a queue at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overview {
    pub counts: Counts,
    pub paused: bool,
    /// How long the oldest waiting job has waited, in ms.
    pub oldest_waiting_age_ms: Option<u64>,
    /// Redis's clock when this was read.
    pub now_ms: i64,
}

/// One page of a listing.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub jobs: Vec<JobRecord>,
    /// Pass back to get the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

/// Counters of one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MinuteStats {
    /// Start of the minute, ms since the epoch.
    pub minute_ms: i64,
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    pub retried: u64,
    pub stalled: u64,
    /// Sum of the run times of the attempts that finished in the minute.
    pub run_ms: u64,
    /// Sum of the waits (ready → started) of the attempts that started in the minute.
    pub wait_ms: u64,
}

/// Where a queue's event stream begins (see [`Queue::history_start`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryStart {
    /// The oldest entry still held (`None`: the stream is empty).
    pub first: Option<StreamPos>,
    /// Whether older entries were trimmed away.
    pub trimmed: bool,
}

impl HistoryStart {
    /// The oldest entry held, if a reader who has seen everything up to `after` may
    /// have missed entries that are gone: `after` is older than that entry, and
    /// history was trimmed.
    #[must_use]
    pub fn gap_after(&self, after: StreamPos) -> Option<StreamPos> {
        self.first.filter(|f| self.trimmed && *f > after)
    }
}

/// A worker seen through its heartbeats.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerInfo {
    pub id: String,
    pub last_seen_ms: i64,
    /// What the worker says of itself: host, pid, concurrency, started_at.
    pub info: serde_json::Value,
}

/// The answer to a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveOutcome {
    NotFound,
    /// Deleted; it was in this state.
    Removed(JobState),
    /// Refused: a worker is running it.
    Active,
}

/// The answer to a retry or a promote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveOutcome {
    NotFound,
    Moved,
    /// Refused: the job is in this other state.
    WrongState(JobState),
}

/// A job leased to a worker, as the fetch script hands it over.
#[derive(Debug, Clone)]
pub(crate) struct Leased {
    pub id: String,
    pub payload: String,
    pub attempt: u32,
    pub max_attempts: u32,
    pub backoff: String,
    pub token: u64,
    pub request_id: String,
    pub wait_ms: u64,
    /// Empty when the job came with none.
    pub traceparent: String,
    /// How often the job's handler deferred it (`retry_after`) so far.
    pub deferrals: u32,
    /// Fired by the driver when this lease is lost; the handler's context carries it.
    pub lease_lost: tokio_util::sync::CancellationToken,
}

/// What the fetch script answered.
#[derive(Debug)]
pub(crate) enum FetchReply {
    Paused,
    /// Nothing may start for `wait`: no token or a rate pause (`counter` is
    /// `RATE_LIMITED`), or a hold while the queue's archive catches up
    /// (`ARCHIVE_HELD`). Look again after it, or on a wake-up notice.
    Held {
        wait: Duration,
        counter: &'static str,
    },
    /// The queue has `max_active` jobs active: look again when one finishes.
    AtMaxActive,
    Jobs {
        jobs: Vec<Leased>,
        /// When the queue ran dry: ms until the earliest delayed job falls due.
        next_due_in_ms: Option<i64>,
    },
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Success, with the handler's result as JSON text.
    Completed(String),
    /// A failure worth retrying after `delay`, if attempts remain.
    Retry { error: String, delay: Duration },
    /// A failure that retrying cannot fix.
    Fail { error: String },
    /// The handler deferred the job (`retry_after`): run it again after `delay`
    /// without spending an attempt; with `pause_rate`, no job of the queue starts
    /// before then either.
    Defer {
        reason: String,
        delay: Duration,
        pause_rate: bool,
    },
}

/// One finished attempt to record.
#[derive(Debug, Clone)]
pub(crate) struct AckItem {
    pub id: String,
    pub token: u64,
    pub outcome: Outcome,
}

/// What the ack script did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AckReply {
    pub completed: u64,
    pub retried: u64,
    pub failed: u64,
    pub stale: u64,
    pub deferred: u64,
    /// `failed` by reason, in the order of [`crate::metrics::ACK_FAIL_REASONS`].
    pub failed_by_reason: [u64; 3],
}

/// A progress report to record.
#[derive(Debug, Clone)]
pub(crate) struct ProgressItem {
    pub id: String,
    pub token: u64,
    pub percent: u8,
    pub message: String,
    pub data: String,
}

/// A handle on one queue. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    redis: Redis,
    name: String,
    keys: Keys,
    defaults: QueueDefaults,
    settings: QueueSettings,
    default_backoff_json: String,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.inner.name)
            .finish()
    }
}

/// Milliseconds since the epoch by this machine's clock.
#[must_use]
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Queue {
    /// A handle on queue `name` of namespace `ns`, with these defaults for new jobs.
    pub fn new(redis: Redis, ns: &str, name: &str, defaults: QueueDefaults) -> Result<Self> {
        Self::with_settings(redis, ns, name, defaults, QueueSettings::default())
    }

    /// Like [`Queue::new`], with settings.
    pub fn with_settings(
        redis: Redis,
        ns: &str,
        name: &str,
        defaults: QueueDefaults,
        settings: QueueSettings,
    ) -> Result<Self> {
        let mut keys = Keys::new(ns, name)?;
        if redis.is_cluster() {
            keys = keys.sharded();
        }
        defaults.backoff.validate()?;
        let default_backoff_json = serde_json::to_string(&defaults.backoff)?;
        Ok(Self {
            inner: Arc::new(Inner {
                redis,
                name: name.to_owned(),
                keys,
                defaults,
                settings,
                default_backoff_json,
            }),
        })
    }

    /// The queue's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The queue's keys.
    #[must_use]
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// The Redis Cluster slot of every key of the queue.
    #[must_use]
    pub fn slot(&self) -> u16 {
        crate::keys::cluster_slot(&self.inner.keys.wait)
    }

    /// The defaults applied to new jobs.
    #[must_use]
    pub fn defaults(&self) -> &QueueDefaults {
        &self.inner.defaults
    }

    /// The Redis handle.
    #[must_use]
    pub fn redis(&self) -> &Redis {
        &self.inner.redis
    }

    /// The settings shared by every handle on the queue.
    #[must_use]
    pub fn settings(&self) -> &QueueSettings {
        &self.inner.settings
    }

    fn stats_ttl_s(&self) -> u64 {
        self.inner.settings.stats_window.as_secs().max(60)
    }

    /// Enqueues one job.
    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued> {
        let mut out = self.enqueue_many(vec![job]).await?;
        out.pop()
            .ok_or_else(|| QueueError::Protocol("enqueue returned nothing".into()))
    }

    /// Enqueues many jobs, a thousand per round trip; answers in the same order.
    ///
    /// Every job is checked before any is sent, so a bad one enqueues none.
    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        for job in &jobs {
            job.options.validate()?;
        }
        let now = now_ms();
        let mut out = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(ENQUEUE_CHUNK) {
            let k = &self.inner.keys;
            let mut inv = scripts::ENQUEUE.prepare_invoke();
            inv.key(&k.wait)
                .key(&k.delayed)
                .key(&k.events)
                .key(&k.seq)
                .key(&k.sleep)
                .key(&k.retain)
                .arg(&k.prefix)
                .arg(self.inner.settings.events_maxlen)
                .arg(&k.wake_channel)
                .arg(&self.inner.name)
                .arg(chunk.len());
            for job in chunk {
                let o = &job.options;
                let backoff = match &o.backoff {
                    Some(b) => serde_json::to_string(b)?,
                    None => self.inner.default_backoff_json.clone(),
                };
                let ttl = o.idempotency_ttl.unwrap_or(DEFAULT_IDEMPOTENCY_TTL);
                inv.arg(ulid::Ulid::new().to_string())
                    .arg(&job.payload)
                    .arg(o.priority.unwrap_or(0))
                    .arg(o.delay_ms(now)?)
                    .arg(o.max_attempts.unwrap_or(self.inner.defaults.max_attempts))
                    .arg(backoff)
                    .arg(o.idempotency_key.as_deref().unwrap_or(""))
                    .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
                    .arg(job.request_id.as_deref().unwrap_or(""))
                    .arg(job.traceparent.as_deref().unwrap_or(""))
                    .arg(payload_hash(&job.payload))
                    .arg(
                        o.retention
                            .filter(|r| !r.is_empty())
                            .map(|r| r.encode())
                            .unwrap_or_default(),
                    )
                    .arg(job.submitter.map(|s| s.to_string()).unwrap_or_default());
            }
            // An acknowledged enqueue must survive a failover (`wait_replicas`).
            let reply: Vec<Value> = self
                .inner
                .redis
                .invoke_durable(Traffic::General, self.slot(), &inv)
                .await?;
            for pair in reply.chunks(2) {
                let code = int(pair.get(1).unwrap_or(&Value::Nil))?;
                out.push(Enqueued {
                    id: text(&pair[0])?,
                    created: code == 1,
                    payload_differs: code == 2,
                });
            }
        }
        Ok(out)
    }

    /// The job that owns idempotency key `key` on this queue, if the key is claimed.
    pub async fn idempotency_owner(&self, key: &str) -> Result<Option<String>> {
        let claim: Option<String> = self
            .inner
            .redis
            .query(redis::cmd("GET").arg(self.inner.keys.idempotency(key)))
            .await?;
        Ok(claim.map(|c| c.split(' ').next().unwrap_or_default().to_owned()))
    }

    /// One job, or `None` if there is no such job in this queue.
    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        if !valid_id(id) {
            return Ok(None);
        }
        let fields: HashMap<String, String> = self
            .inner
            .redis
            .query(redis::cmd("HGETALL").arg(self.inner.keys.job(id)))
            .await?;
        Ok(JobRecord::from_fields(&self.inner.name, id, fields))
    }

    /// Deletes a job that is not running.
    pub async fn remove(&self, id: &str) -> Result<RemoveOutcome> {
        if !valid_id(id) {
            return Ok(RemoveOutcome::NotFound);
        }
        let k = &self.inner.keys;
        let mut inv = scripts::REMOVE.prepare_invoke();
        inv.key(&k.wait)
            .key(&k.delayed)
            .key(&k.active)
            .key(&k.completed)
            .key(&k.failed)
            .key(&k.events)
            .arg(&k.prefix)
            .arg(self.inner.settings.events_maxlen)
            .arg(&self.inner.name)
            .arg(id);
        let (code, state): (i64, String) = self.inner.redis.invoke(&inv).await?;
        Ok(match code {
            1 => RemoveOutcome::Removed(parse_state(&state)?),
            2 => RemoveOutcome::Active,
            _ => RemoveOutcome::NotFound,
        })
    }

    /// Runs a failed job again, with fresh attempts.
    pub async fn retry(&self, id: &str) -> Result<MoveOutcome> {
        self.requeue(id, JobState::Failed, "retried").await
    }

    /// Runs a delayed job now.
    pub async fn promote(&self, id: &str) -> Result<MoveOutcome> {
        self.requeue(id, JobState::Delayed, "promoted").await
    }

    async fn requeue(&self, id: &str, from: JobState, message: &str) -> Result<MoveOutcome> {
        if !valid_id(id) {
            return Ok(MoveOutcome::NotFound);
        }
        let k = &self.inner.keys;
        let source = if from == JobState::Failed {
            &k.failed
        } else {
            &k.delayed
        };
        let mut inv = scripts::REQUEUE.prepare_invoke();
        inv.key(source)
            .key(&k.wait)
            .key(&k.events)
            .key(&k.seq)
            .key(&k.sleep)
            .arg(&k.prefix)
            .arg(self.inner.settings.events_maxlen)
            .arg(&self.inner.name)
            .arg(&k.wake_channel)
            .arg(id)
            .arg(from.as_str())
            .arg(message);
        let (code, state): (i64, String) = self.inner.redis.invoke(&inv).await?;
        Ok(match code {
            1 => MoveOutcome::Moved,
            2 => MoveOutcome::WrongState(parse_state(&state)?),
            _ => MoveOutcome::NotFound,
        })
    }

    /// Pauses the queue: no worker anywhere starts a job of it until it is resumed.
    /// Returns whether it was running before.
    pub async fn pause(&self) -> Result<bool> {
        self.set_paused(true).await
    }

    /// Resumes the queue. Returns whether it was paused before.
    pub async fn resume(&self) -> Result<bool> {
        self.set_paused(false).await
    }

    async fn set_paused(&self, paused: bool) -> Result<bool> {
        let k = &self.inner.keys;
        let mut inv = scripts::PAUSE.prepare_invoke();
        inv.key(&k.paused)
            .key(&k.events)
            .arg(if paused { "1" } else { "0" })
            .arg(self.inner.settings.events_maxlen)
            .arg(&self.inner.name)
            .arg(&k.wake_channel);
        let changed: i64 = self.inner.redis.invoke(&inv).await?;
        Ok(changed == 1)
    }

    /// Deletes at most `limit` jobs in `state` (completed or failed) that finished more
    /// than `grace` ago, oldest first. Returns how many it deleted.
    pub async fn clean(&self, state: JobState, grace: Duration, limit: u64) -> Result<u64> {
        let set = match state {
            JobState::Completed => &self.inner.keys.completed,
            JobState::Failed => &self.inner.keys.failed,
            other => {
                return Err(QueueError::InvalidOptions(format!(
                    "only completed or failed jobs can be cleaned, not {other}"
                )));
            }
        };
        let mut removed = 0;
        while removed < limit {
            let batch = (limit - removed).min(CLEAN_CHUNK);
            let mut inv = scripts::CLEAN.prepare_invoke();
            inv.key(set)
                .key(&self.inner.keys.events)
                .arg(&self.inner.keys.prefix)
                .arg(self.inner.settings.events_maxlen)
                .arg(&self.inner.name)
                .arg(u64::try_from(grace.as_millis()).unwrap_or(u64::MAX))
                .arg(batch)
                .arg(state.as_str());
            let n: u64 = self.inner.redis.invoke(&inv).await?;
            removed += n;
            if n < batch {
                break;
            }
        }
        Ok(removed)
    }

    /// Counts per state, the paused flag and the age of the oldest waiting job.
    pub async fn overview(&self) -> Result<Overview> {
        let k = &self.inner.keys;
        let mut inv = scripts::OVERVIEW.prepare_invoke();
        inv.key(&k.wait)
            .key(&k.delayed)
            .key(&k.active)
            .key(&k.completed)
            .key(&k.failed)
            .key(&k.paused)
            .arg(&k.prefix);
        let v: Vec<i64> = self.inner.redis.invoke(&inv).await?;
        if v.len() != 8 {
            return Err(QueueError::Protocol(format!(
                "overview returned {} items",
                v.len()
            )));
        }
        let u = |i: usize| u64::try_from(v[i]).unwrap_or(0);
        Ok(Overview {
            counts: Counts {
                waiting: u(0),
                delayed: u(1),
                active: u(2),
                completed: u(3),
                failed: u(4),
            },
            paused: v[5] == 1,
            now_ms: v[6],
            oldest_waiting_age_ms: (v[7] >= 0).then(|| u64::try_from(v[6] - v[7]).unwrap_or(0)),
        })
    }

    /// Whether the queue is paused.
    pub async fn is_paused(&self) -> Result<bool> {
        let n: i64 = self
            .inner
            .redis
            .query(redis::cmd("EXISTS").arg(&self.inner.keys.paused))
            .await?;
        Ok(n == 1)
    }

    /// A page of jobs in `state`, in run order (waiting, delayed, active) or newest
    /// first (completed, failed), continuing after `cursor`.
    pub async fn list(&self, state: JobState, cursor: Option<&str>, limit: usize) -> Result<Page> {
        let limit = limit.clamp(1, MAX_PAGE);
        let (set, rev) = match state {
            JobState::Waiting => (&self.inner.keys.wait, false),
            JobState::Delayed => (&self.inner.keys.delayed, false),
            JobState::Active => (&self.inner.keys.active, false),
            JobState::Completed => (&self.inner.keys.completed, true),
            JobState::Failed => (&self.inner.keys.failed, true),
        };
        let (after_id, after_score) = match cursor {
            None | Some("") => (String::new(), String::from("0")),
            Some(c) => parse_cursor(c)?,
        };
        let mut inv = scripts::PAGE.prepare_invoke();
        inv.key(set)
            .arg(if rev { "1" } else { "0" })
            .arg(&after_id)
            .arg(&after_score)
            .arg(limit);
        let pairs: Vec<String> = self.inner.redis.invoke(&inv).await?;
        let ids: Vec<(&String, &String)> = pairs
            .chunks(2)
            .filter_map(|c| Some((c.first()?, c.get(1)?)))
            .collect();
        let mut pipe = redis::pipe();
        for (id, _) in &ids {
            pipe.cmd("HGETALL").arg(self.inner.keys.job(id));
        }
        let hashes: Vec<HashMap<String, String>> = if ids.is_empty() {
            Vec::new()
        } else {
            self.inner.redis.pipe(&pipe).await?
        };
        let jobs: Vec<JobRecord> = ids
            .iter()
            .zip(hashes)
            .filter_map(|((id, _), f)| JobRecord::from_fields(&self.inner.name, id, f))
            .collect();
        let next_cursor = if ids.len() == limit {
            ids.last().map(|(id, score)| format!("{score}|{id}"))
        } else {
            None
        };
        Ok(Page { jobs, next_cursor })
    }

    /// Workers whose heartbeats this queue has seen recently, newest first.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let mut inv = scripts::WORKERS.prepare_invoke();
        inv.key(&self.inner.keys.workers)
            .arg(&self.inner.keys.prefix)
            .arg(1000);
        let v: Vec<String> = self.inner.redis.invoke(&inv).await?;
        Ok(v.chunks(3)
            .filter(|c| c.len() == 3)
            .map(|c| WorkerInfo {
                id: c[0].clone(),
                last_seen_ms: c[1].parse::<f64>().map(|f| f as i64).unwrap_or(0),
                info: serde_json::from_str(&c[2]).unwrap_or(serde_json::Value::Null),
            })
            .collect())
    }

    /// The counters of the last `minutes` minutes, oldest first, the current one last.
    pub async fn minute_stats(&self, minutes: u32) -> Result<Vec<MinuteStats>> {
        let minutes = minutes.clamp(1, 24 * 60);
        let current = now_ms() / 60_000;
        let first = current - i64::from(minutes) + 1;
        let mut pipe = redis::pipe();
        for m in first..=current {
            pipe.cmd("HGETALL").arg(self.inner.keys.stats(m));
        }
        let maps: Vec<HashMap<String, u64>> = self.inner.redis.pipe(&pipe).await?;
        Ok((first..=current)
            .zip(maps)
            .map(|(m, f)| {
                let g = |k: &str| f.get(k).copied().unwrap_or(0);
                MinuteStats {
                    minute_ms: m * 60_000,
                    started: g("started"),
                    completed: g("completed"),
                    failed: g("failed"),
                    retried: g("retried"),
                    stalled: g("stalled"),
                    run_ms: g("run_ms"),
                    wait_ms: g("wait_ms"),
                }
            })
            .collect())
    }

    /// Events after stream position `after` (exclusive; `"0"` for the oldest kept), at most `count`.
    pub async fn events_after(&self, after: &str, count: usize) -> Result<Vec<Event>> {
        let start = if after == "0" || after == "0-0" {
            "-".to_owned()
        } else {
            format!("({after}")
        };
        Ok(self
            .range(start, count)
            .await?
            .into_iter()
            .filter_map(|(_, e)| e)
            .collect())
    }

    /// The entries after `after` (exclusive), at most `count`, each with its position.
    /// An entry of another shape comes with `None`, so a reader paging with the last
    /// position still moves past it.
    pub async fn entries_after(
        &self,
        after: StreamPos,
        count: usize,
    ) -> Result<Vec<(StreamPos, Option<Event>)>> {
        self.range(format!("({after}"), count).await
    }

    /// Where the stream's history starts: its oldest entry, and whether entries
    /// before it were trimmed (or deleted) away.
    pub async fn history_start(&self) -> Result<HistoryStart> {
        let Some((first, _)) = self.range("-".to_owned(), 1).await?.into_iter().next() else {
            return Ok(HistoryStart {
                first: None,
                trimmed: false,
            });
        };
        let info: HashMap<String, Value> = self
            .inner
            .redis
            .query(
                redis::cmd("XINFO")
                    .arg("STREAM")
                    .arg(&self.inner.keys.events),
            )
            .await?;
        let int = |k: &str| {
            info.get(k)
                .and_then(|v| redis::from_redis_value_ref::<u64>(v).ok())
                .unwrap_or(0)
        };
        Ok(HistoryStart {
            first: Some(first),
            trimmed: int("entries-added") > int("length"),
        })
    }

    /// `XRANGE` from `start` to the end, at most `count` entries.
    async fn range(&self, start: String, count: usize) -> Result<Vec<(StreamPos, Option<Event>)>> {
        let reply: StreamRangeReply = self
            .inner
            .redis
            .query(
                redis::cmd("XRANGE")
                    .arg(&self.inner.keys.events)
                    .arg(start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(count.max(1)),
            )
            .await?;
        Ok(reply
            .ids
            .iter()
            .filter_map(|e| Some((e.id.parse().ok()?, Event::from_entry(e))))
            .collect())
    }

    /// The id of the newest event (`"0-0"` when the stream is empty).
    pub async fn last_event_id(&self) -> Result<String> {
        let reply: StreamRangeReply = self
            .inner
            .redis
            .query(
                redis::cmd("XREVRANGE")
                    .arg(&self.inner.keys.events)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1),
            )
            .await?;
        Ok(reply
            .ids
            .first()
            .map(|e| e.id.clone())
            .unwrap_or_else(|| "0-0".to_owned()))
    }

    /// Appends an event by hand (the dev-only test event); returns its id.
    pub async fn append_event(
        &self,
        kind: EventType,
        job_id: &str,
        message: &str,
        data: &serde_json::Value,
    ) -> Result<String> {
        let event = Event {
            id: String::new(),
            kind,
            queue: self.inner.name.clone(),
            job_id: job_id.to_owned(),
            attempt: 0,
            progress: 0,
            message: message.to_owned(),
            data: data.clone(),
            ts: now_ms(),
        };
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&self.inner.keys.events)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.inner.settings.events_maxlen)
            .arg("*");
        for (k, v) in event.fields() {
            cmd.arg(k).arg(v);
        }
        self.inner.redis.query(&cmd).await
    }

    // ---- used by the worker side -------------------------------------------------------

    pub(crate) async fn fetch(
        &self,
        worker: &str,
        fetch_seq: u64,
        n: usize,
        lease: Duration,
        promote_batch: usize,
    ) -> Result<FetchReply> {
        let k = &self.inner.keys;
        let mut inv = scripts::FETCH.prepare_invoke();
        inv.key(&k.wait)
            .key(&k.delayed)
            .key(&k.active)
            .key(&k.events)
            .key(&k.paused)
            .key(&k.sleep)
            .key(&k.seq)
            .key(&k.flow)
            .key(&k.capwait)
            .arg(&k.prefix)
            .arg(self.inner.settings.events_maxlen)
            .arg(worker)
            .arg(n)
            .arg(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX))
            .arg(promote_batch)
            .arg(self.stats_ttl_s())
            .arg(&self.inner.name)
            .arg(fetch_seq);
        let v: Vec<Value> = self.inner.redis.invoke_on(Traffic::Control, &inv).await?;
        if v.len() < 2 {
            return Err(QueueError::Protocol("fetch returned too little".into()));
        }
        match int(&v[0])? {
            1 => return Ok(FetchReply::Paused),
            status @ (2 | 4) => {
                return Ok(FetchReply::Held {
                    wait: Duration::from_millis(u64::try_from(int(&v[1])?).unwrap_or(0)),
                    counter: if status == 2 {
                        crate::metrics::RATE_LIMITED
                    } else {
                        crate::metrics::ARCHIVE_HELD
                    },
                });
            }
            3 => return Ok(FetchReply::AtMaxActive),
            _ => {}
        }
        let next_due = int(&v[1])?;
        let mut jobs = Vec::with_capacity((v.len() - 2) / 10);
        for j in v[2..].chunks(10) {
            if j.len() < 10 {
                return Err(QueueError::Protocol("fetch returned a partial job".into()));
            }
            jobs.push(Leased {
                id: text(&j[0])?,
                payload: text(&j[1])?,
                attempt: u32::try_from(int(&j[2])?).unwrap_or(1),
                max_attempts: u32::try_from(int(&j[3])?).unwrap_or(1),
                backoff: text(&j[4]).unwrap_or_default(),
                token: u64::try_from(int(&j[5])?).unwrap_or(0),
                request_id: text(&j[6]).unwrap_or_default(),
                wait_ms: u64::try_from(int(&j[7])?).unwrap_or(0),
                traceparent: text(&j[8]).unwrap_or_default(),
                deferrals: u32::try_from(int(&j[9]).unwrap_or(0)).unwrap_or(0),
                lease_lost: tokio_util::sync::CancellationToken::new(),
            });
        }
        Ok(FetchReply::Jobs {
            jobs,
            next_due_in_ms: (next_due >= 0).then_some(next_due),
        })
    }

    /// Confirms that `worker` holds the batch of fetch `fetch_seq`: its attempts,
    /// counted at the fetch, stand (see confirm.lua).
    pub(crate) async fn confirm(&self, worker: &str, fetch_seq: u64) -> Result<()> {
        let mut inv = scripts::CONFIRM.prepare_invoke();
        inv.key(self.inner.keys.unconfirmed(worker)).arg(fetch_seq);
        let _: i64 = self.inner.redis.invoke_on(Traffic::Control, &inv).await?;
        Ok(())
    }

    pub(crate) async fn ack(&self, items: &[AckItem]) -> Result<AckReply> {
        let k = &self.inner.keys;
        let mut inv = scripts::ACK.prepare_invoke();
        inv.key(&k.active)
            .key(&k.delayed)
            .key(&k.completed)
            .key(&k.failed)
            .key(&k.events)
            .key(&k.sleep)
            .key(&k.flow)
            .key(&k.capwait)
            .arg(&k.prefix)
            .arg(self.inner.settings.events_maxlen)
            .arg(self.stats_ttl_s())
            .arg(&self.inner.name)
            .arg(&k.wake_channel)
            .arg(items.len());
        for item in items {
            inv.arg(&item.id).arg(item.token);
            match &item.outcome {
                Outcome::Completed(result) => {
                    inv.arg("c").arg(result).arg(0);
                }
                Outcome::Retry { error, delay } => {
                    inv.arg("r")
                        .arg(serde_json::to_string(error)?)
                        .arg(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
                }
                Outcome::Fail { error } => {
                    inv.arg("f").arg(serde_json::to_string(error)?).arg(0);
                }
                Outcome::Defer {
                    reason,
                    delay,
                    pause_rate,
                } => {
                    inv.arg(if *pause_rate { "p" } else { "d" })
                        .arg(serde_json::to_string(reason)?)
                        .arg(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
                }
            }
        }
        // A finished job must not run again after a failover (`wait_replicas`).
        let v: Vec<u64> = self
            .inner
            .redis
            .invoke_durable(Traffic::Control, self.slot(), &inv)
            .await?;
        if v.len() != 8 {
            return Err(QueueError::Protocol("ack returned a bad reply".into()));
        }
        Ok(AckReply {
            completed: v[0],
            retried: v[1],
            failed: v[2],
            stale: v[3],
            deferred: v[4],
            failed_by_reason: [v[5], v[6], v[7]],
        })
    }

    /// Extends leases; returns the ids this worker no longer holds.
    pub(crate) async fn renew(
        &self,
        lease: Duration,
        held: &[(String, u64)],
    ) -> Result<Vec<String>> {
        let mut inv = scripts::RENEW.prepare_invoke();
        inv.key(&self.inner.keys.active)
            .arg(&self.inner.keys.prefix)
            .arg(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX));
        for (id, token) in held {
            inv.arg(id).arg(*token);
        }
        self.inner.redis.invoke_on(Traffic::Control, &inv).await
    }

    /// Rescues up to `batch` jobs with expired leases; returns (back to waiting, failed).
    pub async fn rescue(&self, batch: usize) -> Result<(u64, u64)> {
        let k = &self.inner.keys;
        let mut inv = scripts::RESCUE.prepare_invoke();
        inv.key(&k.active)
            .key(&k.wait)
            .key(&k.failed)
            .key(&k.events)
            .key(&k.seq)
            .key(&k.sleep)
            .arg(&k.prefix)
            .arg(self.inner.settings.events_maxlen)
            .arg(batch)
            .arg(&self.inner.name)
            .arg(&k.wake_channel)
            .arg(self.stats_ttl_s());
        self.inner.redis.invoke_on(Traffic::Control, &inv).await
    }

    pub(crate) async fn release(&self, held: &[(String, u64)]) -> Result<u64> {
        let k = &self.inner.keys;
        let mut inv = scripts::RELEASE.prepare_invoke();
        inv.key(&k.active)
            .key(&k.wait)
            .key(&k.events)
            .key(&k.sleep)
            .arg(&k.prefix)
            .arg(self.inner.settings.events_maxlen)
            .arg(&self.inner.name)
            .arg(&k.wake_channel);
        for (id, token) in held {
            inv.arg(id).arg(*token);
        }
        self.inner.redis.invoke_on(Traffic::Control, &inv).await
    }

    pub(crate) async fn progress(&self, items: &[ProgressItem]) -> Result<u64> {
        let mut inv = scripts::PROGRESS.prepare_invoke();
        inv.key(&self.inner.keys.events)
            .arg(&self.inner.keys.prefix)
            .arg(self.inner.settings.events_maxlen)
            .arg(&self.inner.name);
        for p in items {
            inv.arg(&p.id)
                .arg(p.token)
                .arg(p.percent)
                .arg(&p.message)
                .arg(&p.data);
        }
        self.inner.redis.invoke_on(Traffic::Control, &inv).await
    }

    pub(crate) async fn heartbeat(&self, worker: &str, info: &str, ttl: Duration) -> Result<()> {
        let mut inv = scripts::HEARTBEAT.prepare_invoke();
        inv.key(&self.inner.keys.workers)
            .arg(&self.inner.keys.prefix)
            .arg(worker)
            .arg(info)
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let _: i64 = self.inner.redis.invoke_on(Traffic::Control, &inv).await?;
        Ok(())
    }
}

/// Ids are ULIDs; anything else cannot name a job, and must not reach a key.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn parse_state(s: &str) -> Result<JobState> {
    s.parse()
        .map_err(|_| QueueError::Protocol(format!("unknown state {s:?}")))
}

fn parse_cursor(c: &str) -> Result<(String, String)> {
    let bad = || QueueError::InvalidOptions("cursor is not one this API returned".into());
    let (score, id) = c.split_once('|').ok_or_else(bad)?;
    // Redis refuses NaN as a range bound (a script error, not a bad request).
    if !score.parse::<f64>().is_ok_and(|s| !s.is_nan()) || !valid_id(id) {
        return Err(bad());
    }
    Ok((id.to_owned(), score.to_owned()))
}

fn text(v: &Value) -> Result<String> {
    redis::from_redis_value_ref::<String>(v).map_err(|e| QueueError::Protocol(e.to_string()))
}

fn int(v: &Value) -> Result<i64> {
    redis::from_redis_value_ref::<i64>(v).map_err(|e| QueueError::Protocol(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::parse_cursor;

    #[test]
    fn cursors_are_checked_before_they_reach_redis() {
        assert!(parse_cursor("1712.5|01ABC").is_ok());
        assert!(parse_cursor("1e5|x").is_ok());
        for bad in ["NaN|x", "nan|x", "x|01ABC", "1|", "1", "1|a b", "1|../x"] {
            assert!(parse_cursor(bad).is_err(), "{bad}");
        }
    }
}
