//! The enforcement loop: select past-retention jobs, archive them, then remove them.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::Value;
use tokio_util::sync::CancellationToken;

use super::Retention;
use crate::error::QueueError;
use crate::job::{JobRecord, JobState};
use crate::queue::Queue;
use crate::scripts;

/// An error of the archive's storage, as the sink reports it.
pub type ArchiveError = Box<dyn std::error::Error + Send + Sync>;

/// Where jobs go before they leave Redis.
///
/// `archive` must return `Ok` only once every record is durably stored (committed):
/// the enforcer removes the jobs from Redis right after. It must accept a record it
/// has stored before (a re-archive after a crash) and keep one row per job id.
pub trait ArchiveSink: Send + Sync + 'static {
    /// Stores these finished jobs of `queue`; returns how many rows it wrote.
    fn archive(
        &self,
        queue: &str,
        jobs: &[JobRecord],
    ) -> impl Future<Output = Result<u64, ArchiveError>> + Send;
}

/// What can stop a retention step.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The archive refused or failed: nothing was removed.
    #[error("archive: {0}")]
    Archive(ArchiveError),
}

/// How the enforcer paces itself.
#[derive(Debug, Clone)]
pub struct EnforcerOptions {
    /// How long to wait after a pass that found less than a full batch.
    pub interval: Duration,
    /// Most jobs selected, archived and removed per step.
    pub batch: usize,
    /// Most members one select script looks at per pass (head, sweep).
    pub scan: usize,
    /// Most full steps per state in one pass, before the other state gets its turn.
    pub max_steps: usize,
    /// How long the queue's retention lock lasts without renewal.
    pub lock_ttl: Duration,
    /// How many finished jobs of one state past its `max_count` the archive may fall
    /// behind by before the queue's starts are held until it catches up (0: never
    /// hold). This is what bounds Redis when jobs finish faster than the archive
    /// takes them: without it the backlog grows as long as the load lasts.
    pub hold_backlog: u64,
    /// How long one hold lasts unless renewed; every step renews it while the
    /// enforcer is behind, so a dead enforcer holds nobody for longer than this.
    pub hold_for: Duration,
}

impl Default for EnforcerOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            batch: 1000,
            scan: 4000,
            max_steps: 20,
            lock_ttl: Duration::from_secs(15),
            hold_backlog: 50_000,
            hold_for: Duration::from_secs(3),
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Jobs past retention that were picked.
    pub selected: usize,
    /// Rows the sink wrote.
    pub archived: u64,
    /// Jobs removed from Redis.
    pub removed: u64,
    /// Another worker holds the queue's retention lock: nothing was done.
    pub locked_out: bool,
    /// The step stepped over a whole scan of jobs kept by their own limits: there may
    /// be jobs past retention behind them, so step again at once.
    pub more: bool,
}

/// What one pass over both states did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    pub archived: u64,
    pub removed: u64,
    /// Some step found a full batch: there is more to do at once.
    pub more: bool,
    pub locked_out: bool,
}

/// Enforces one queue's retention.
pub struct Enforcer<S> {
    queue: Queue,
    retention: Retention,
    sink: S,
    opts: EnforcerOptions,
    owner: String,
    /// Whether this enforcer holds the queue's starts, per state (completed, failed).
    held: [AtomicBool; 2],
}

impl<S: ArchiveSink> Enforcer<S> {
    /// An enforcer of `retention` on `queue`, archiving through `sink`.
    pub fn new(
        queue: Queue,
        retention: Retention,
        sink: S,
        opts: EnforcerOptions,
    ) -> crate::Result<Self> {
        retention.validate()?;
        let owner = crate::worker::worker_id(&format!("retention-{}", queue.name()));
        Ok(Self {
            queue,
            retention,
            sink,
            opts,
            owner,
            held: [AtomicBool::new(false), AtomicBool::new(false)],
        })
    }

    /// The queue's retention.
    #[must_use]
    pub fn retention(&self) -> &Retention {
        &self.retention
    }

    /// One bounded step for `state` (completed or failed): select, archive, remove.
    pub async fn step(&self, state: JobState) -> Result<StepReport, RetentionError> {
        let archive = self.retention.archive.archives(state);
        let Some((picked, more)) = self.select(state, archive).await? else {
            return Ok(StepReport {
                locked_out: true,
                ..StepReport::default()
            });
        };
        if picked.is_empty() {
            self.hold_if_behind(state, false).await?;
            return Ok(StepReport {
                more,
                ..StepReport::default()
            });
        }
        // Before the archive write, so that a slow write runs with the hold in force.
        self.hold_if_behind(state, picked.len() >= self.opts.batch)
            .await?;
        let mut archived = 0;
        if archive {
            let records: Vec<JobRecord> = picked.iter().filter_map(|p| p.record.clone()).collect();
            archived = self
                .sink
                .archive(self.queue.name(), &records)
                .await
                .map_err(RetentionError::Archive)?;
        }
        let removed = self.remove(state, archive, &picked).await?;
        Ok(StepReport {
            selected: picked.len(),
            archived,
            removed,
            locked_out: false,
            more: more || picked.len() >= self.opts.batch,
        })
    }

    /// Holds the queue's starts while `state`'s finished set is past its `max_count`
    /// by more than `hold_backlog` and the step being made (`full`) found a whole
    /// batch to archive, so there is real backlog and not only jobs kept by limits
    /// of their own; lets them go once it is back under half that, or a step finds
    /// less than a batch. An archive that fails holds nobody: its errors stop the
    /// steps, the hold lapses after `hold_for`, and jobs keep running while finished
    /// ones wait in Redis for the archive to return.
    async fn hold_if_behind(&self, state: JobState, full: bool) -> crate::Result<()> {
        let backlog = self.opts.hold_backlog;
        if backlog == 0 {
            return Ok(());
        }
        let slot = usize::from(state == JobState::Failed);
        let was = self.held[slot].load(Ordering::Relaxed);
        let behind = full && {
            let over = if was { backlog / 2 } else { backlog };
            let limit = self.retention.limits(state).max_count.saturating_add(over);
            let size: u64 = self
                .queue
                .redis()
                .query(redis::cmd("ZCARD").arg(finished_set(&self.queue, state)?))
                .await?;
            size > limit
        };
        self.held[slot].store(behind, Ordering::Relaxed);
        let other = self.held[1 - slot].load(Ordering::Relaxed);
        if behind {
            if !was {
                tracing::warn!(
                    queue = self.queue.name(),
                    state = state.as_str(),
                    backlog,
                    "the archive is behind: holding the queue's starts until it catches up"
                );
            }
            self.set_hold(self.opts.hold_for).await?;
        } else if was && !other {
            tracing::info!(
                queue = self.queue.name(),
                "the archive caught up: starts resume"
            );
            self.set_hold(Duration::ZERO).await?;
        }
        Ok(())
    }

    /// Sets (or, with zero, releases) the queue's archive hold.
    async fn set_hold(&self, hold: Duration) -> crate::Result<()> {
        let k = self.queue.keys();
        let mut inv = scripts::ARCHIVE_HOLD.prepare_invoke();
        inv.key(&k.flow)
            .arg(u64::try_from(hold.as_millis()).unwrap_or(u64::MAX))
            .arg(self.queue.name())
            .arg(&k.wake_channel);
        let _: i64 = self.queue.redis().invoke(&inv).await?;
        let on = if hold.is_zero() { 0.0 } else { 1.0 };
        metrics::gauge!(crate::metrics::ARCHIVE_HOLD, "queue" => self.queue.name().to_owned())
            .set(on);
        Ok(())
    }

    /// Steps through both states until each finds less than a full batch, at most
    /// `max_steps` full steps each.
    pub async fn pass(&self) -> Result<PassReport, RetentionError> {
        let mut report = PassReport::default();
        for state in [JobState::Completed, JobState::Failed] {
            for _ in 0..self.opts.max_steps.max(1) {
                let s = self.step(state).await?;
                report.archived += s.archived;
                report.removed += s.removed;
                if s.locked_out {
                    report.locked_out = true;
                    return Ok(report);
                }
                if !s.more {
                    break;
                }
                report.more = true;
            }
        }
        Ok(report)
    }

    /// Enforces until `stop` is cancelled: a pass, then another at once if it found
    /// more, else after the interval. Errors (Redis or the archive away) are logged and
    /// retried with a growing pause; nothing is removed that was not archived.
    pub async fn run(&self, stop: CancellationToken) {
        let q = self.queue.name();
        let mut failures: u32 = 0;
        while !stop.is_cancelled() {
            let wait = match self.pass().await {
                Ok(r) => {
                    failures = 0;
                    if r.removed > 0 {
                        tracing::debug!(
                            queue = q,
                            archived = r.archived,
                            removed = r.removed,
                            "retention pass"
                        );
                    }
                    if r.more {
                        tokio::task::yield_now().await;
                        continue;
                    }
                    self.opts.interval
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(queue = q, error = %e, failures, "retention step failed; will retry");
                    }
                    (self.opts.interval * failures.min(30)).min(Duration::from_secs(30))
                }
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        if self.held.iter().any(|h| h.load(Ordering::Relaxed)) {
            // Stopping: nobody will renew the hold, so do not make the queue wait
            // for it to lapse.
            let _ = self.set_hold(Duration::ZERO).await;
        }
    }

    /// The jobs picked, and whether to step again at once; `None` if locked out.
    async fn select(
        &self,
        state: JobState,
        fields: bool,
    ) -> crate::Result<Option<(Vec<Picked>, bool)>> {
        let k = self.queue.keys();
        let set = finished_set(&self.queue, state)?;
        let limits = self.retention.limits(state);
        let mut inv = scripts::RETENTION_SELECT.prepare_invoke();
        inv.key(set)
            .key(&k.retain)
            .key(k.retain_head(state.as_str()))
            .key(k.retain_sweep(state.as_str()))
            .key(&k.retain_lock)
            .arg(&k.prefix)
            .arg(state.as_str())
            .arg(u64::try_from(limits.max_age.as_millis()).unwrap_or(u64::MAX))
            .arg(limits.max_count)
            .arg(self.opts.batch.max(1))
            .arg(self.opts.scan.max(self.opts.batch).max(1))
            .arg(&self.owner)
            .arg(
                u64::try_from(self.opts.lock_ttl.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            )
            .arg(if fields { "1" } else { "0" });
        let reply: Vec<Value> = self.queue.redis().invoke(&inv).await?;
        let mut it = reply.into_iter();
        let status = int(&it.next().unwrap_or(Value::Nil))?;
        if status == 0 {
            return Ok(None);
        }
        let mut picked = Vec::new();
        for job in it {
            let Value::Array(parts) = job else {
                return Err(QueueError::Protocol(
                    "retention select: a job is not an array".into(),
                ));
            };
            let [id, score, f] = <[Value; 3]>::try_from(parts).map_err(|_| {
                QueueError::Protocol("retention select: a job is not 3 items".into())
            })?;
            let id = text(&id)?;
            let score = text(&score)?;
            let record = if fields {
                let flat: Vec<String> = redis::from_redis_value_ref(&f)
                    .map_err(|e| QueueError::Protocol(e.to_string()))?;
                let map: HashMap<String, String> = flat
                    .chunks(2)
                    .filter_map(|c| Some((c.first()?.clone(), c.get(1)?.clone())))
                    .collect();
                JobRecord::from_fields(self.queue.name(), &id, map)
            } else {
                None
            };
            picked.push(Picked { id, score, record });
        }
        Ok(Some((picked, status == 2)))
    }

    async fn remove(
        &self,
        state: JobState,
        archived: bool,
        picked: &[Picked],
    ) -> crate::Result<u64> {
        let k = self.queue.keys();
        let mut inv = scripts::RETENTION_REMOVE.prepare_invoke();
        inv.key(finished_set(&self.queue, state)?)
            .key(&k.retain)
            .key(&k.events)
            .arg(&k.prefix)
            .arg(state.as_str())
            .arg(self.queue.settings().events_maxlen)
            .arg(self.queue.name())
            .arg(if archived { "1" } else { "0" });
        for p in picked {
            // A job that could not be read back was not archived: leave it alone.
            if archived && p.record.is_none() {
                continue;
            }
            inv.arg(&p.id).arg(&p.score);
        }
        self.queue.redis().invoke(&inv).await
    }
}

/// A job picked by the select script.
struct Picked {
    id: String,
    /// Its score in the finished set, as Redis formats it.
    score: String,
    record: Option<JobRecord>,
}

fn finished_set(queue: &Queue, state: JobState) -> crate::Result<&str> {
    match state {
        JobState::Completed => Ok(&queue.keys().completed),
        JobState::Failed => Ok(&queue.keys().failed),
        other => Err(QueueError::InvalidOptions(format!(
            "retention applies to completed and failed jobs, not {other}"
        ))),
    }
}

fn text(v: &Value) -> crate::Result<String> {
    redis::from_redis_value_ref::<String>(v).map_err(|e| QueueError::Protocol(e.to_string()))
}

fn int(v: &Value) -> crate::Result<i64> {
    redis::from_redis_value_ref::<i64>(v).map_err(|e| QueueError::Protocol(e.to_string()))
}
