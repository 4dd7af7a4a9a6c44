//! The leader's work: keep the schedules in view, and fire what falls due.
//!
//! The runner holds, per schedule, the last scheduled time it has decided about (its
//! *cursor*). When this replica becomes leader (at start, after a failover or after a
//! Redis outage), every cursor is read back from the database: the newest recorded
//! fire, or the schedule's anchor if it never fired. So the missed-fire policy sees
//! every fire that nobody decided about, whoever led before.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use drover_jobs::connect::Queues;
use sea_orm::DatabaseConnection;

use crate::fire::{self, FireError};
use crate::plan::{Step, plan};
use crate::spec::Spec;
use crate::{metrics, store};

/// Where the time comes from: the system clock in production, a hand-set one in tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// How often old fire records are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Pending fires completed per pass.
const PENDING_BATCH: u64 = 100;

/// The runner's settings.
#[derive(Debug, Clone, Copy)]
pub struct RunnerOptions {
    pub reload: Duration,
    pub grace: chrono::Duration,
    pub fire_retention: chrono::Duration,
}

struct Entry {
    spec: Spec,
    /// The last scheduled time decided about; `None` until read from the database.
    cursor: Option<DateTime<Utc>>,
}

/// The leader's state.
pub struct Runner {
    db: DatabaseConnection,
    queues: Queues,
    clock: Arc<dyn Clock>,
    options: RunnerOptions,
    entries: BTreeMap<String, Entry>,
    /// Rows that did not check out, by name, with the `updated_at` already warned about.
    bad: HashMap<String, DateTime<Utc>>,
    loaded_at: Option<Instant>,
    pending_check: bool,
    pruned_at: Option<Instant>,
}

impl Runner {
    #[must_use]
    pub fn new(
        db: DatabaseConnection,
        queues: Queues,
        clock: Arc<dyn Clock>,
        options: RunnerOptions,
    ) -> Self {
        Self {
            db,
            queues,
            clock,
            options,
            entries: BTreeMap::new(),
            bad: HashMap::new(),
            loaded_at: None,
            pending_check: true,
            pruned_at: None,
        }
    }

    /// Forgets everything in memory: the next tick reads the schedules and cursors
    /// back from the database and completes pending fires. Called on becoming leader.
    pub fn reset(&mut self) {
        self.entries.clear();
        self.loaded_at = None;
        self.pending_check = true;
    }

    async fn reload(&mut self, now: DateTime<Utc>) -> Result<(), FireError> {
        let rows = store::list(&self.db).await?;
        let mut entries = BTreeMap::new();
        for row in rows {
            crate::metrics::zero_schedule_series(&row.name);
            match Spec::from_model(&row, now) {
                Ok(spec) => {
                    self.bad.remove(&row.name);
                    // The cursor survives an edit that keeps the anchor (the timing).
                    let cursor = self
                        .entries
                        .remove(&row.name)
                        .filter(|e| e.spec.anchor_at == spec.anchor_at)
                        .and_then(|e| e.cursor);
                    entries.insert(row.name.clone(), Entry { spec, cursor });
                }
                Err(e) => {
                    if self.bad.get(&row.name) != Some(&row.updated_at) {
                        tracing::warn!(schedule = row.name, error = %e, "schedule does not check out: it does not fire until it is fixed");
                        self.bad.insert(row.name.clone(), row.updated_at);
                    }
                }
            }
        }
        self.entries = entries;
        self.loaded_at = Some(Instant::now());
        Ok(())
    }

    async fn complete_pending(&self) -> Result<(), FireError> {
        for row in store::pending(&self.db, PENDING_BATCH).await? {
            let (name, at) = (row.schedule_name.clone(), row.scheduled_at);
            let clock = self.clock.clone();
            let done =
                fire::enqueue_claimed(&self.db, &self.queues, row, move || clock.now()).await?;
            tracing::info!(schedule = name, fire = %at, job.id = done.job_id.as_deref().unwrap_or(""), "pending fire enqueued");
        }
        Ok(())
    }

    async fn prune(&mut self, now: DateTime<Utc>) -> Result<(), FireError> {
        if self.pruned_at.is_some_and(|t| t.elapsed() < PRUNE_EVERY) {
            return Ok(());
        }
        self.pruned_at = Some(Instant::now());
        let before = now - self.options.fire_retention;
        for name in self.entries.keys() {
            let n = store::prune(&self.db, name, before).await?;
            if n > 0 {
                tracing::info!(schedule = name, removed = n, "old fire records pruned");
            }
        }
        Ok(())
    }

    /// Fires what is due; returns the next scheduled time of any enabled schedule.
    ///
    /// # Errors
    /// When the database or Redis failed: the caller resets the runner and retries.
    pub async fn tick(&mut self) -> Result<Option<DateTime<Utc>>, FireError> {
        let now = self.clock.now();
        if self
            .loaded_at
            .is_none_or(|t| t.elapsed() >= self.options.reload)
        {
            self.reload(now).await?;
        }
        if self.pending_check {
            self.complete_pending().await?;
            self.pending_check = false;
        }
        let clock = self.clock.clone();
        for entry in self.entries.values_mut().filter(|e| e.spec.enabled) {
            let spec = &entry.spec;
            let cursor = match entry.cursor {
                Some(c) => c,
                None => {
                    let last = store::last_scheduled(&self.db, &spec.name).await?;
                    let c = last.map_or(spec.anchor_at, |l| l.max(spec.anchor_at));
                    entry.cursor = Some(c);
                    c
                }
            };
            let p = plan(&spec.timing, spec.policy(self.options.grace), cursor, now);
            for step in p.steps {
                let at = step.at();
                let done = match step {
                    Step::Fire { at, missed } => {
                        let c = clock.clone();
                        let r = fire::scheduled(&self.db, &self.queues, spec, at, move || c.now())
                            .await;
                        if missed && r.is_ok() {
                            metrics::missed(&spec.name, 1);
                        }
                        r
                    }
                    Step::Skip { at, reason, count } => {
                        let r = fire::skip(&self.db, spec, at, reason, count, clock.now()).await;
                        if r.is_ok() {
                            metrics::missed(&spec.name, count);
                        }
                        r
                    }
                };
                if let Err(e) = done {
                    // The row may be claimed but not enqueued: re-read and complete later.
                    entry.cursor = None;
                    self.pending_check = true;
                    return Err(e);
                }
                entry.cursor = Some(at);
            }
        }
        self.prune(now).await?;
        let now = self.clock.now();
        Ok(self
            .entries
            .values()
            .filter(|e| e.spec.enabled)
            .filter_map(|e| e.spec.timing.next_after(now))
            .min())
    }
}
