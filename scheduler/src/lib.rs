//! Drover's scheduler: fires the built-in schedules, once across any number of replicas.
//!
//! Every replica ticks; only the one holding the leader lock (a Redis key with a TTL,
//! renewed each tick) enqueues. Each fire is enqueued with the idempotency key
//! `schedule:<name>:<fire time>`, so even two leaders overlapping for a moment
//! (a paused process waking up) create one job per fire.
//!
//! Missed fires: a new leader fires what falls due from the moment it took over; fires
//! missed while no scheduler ran are skipped (the `skip` policy). The cron issue makes
//! schedules editable, recorded in the database, and adds the `once` and `all` policies.
//!
//! # Layout
//!
//! - [`config`]: the settings, read once at start.
//! - [`schedule`]: the schedules and their payloads.
//! - [`leader`]: the leader lock.

pub mod config;
pub mod leader;
pub mod schedule;

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use drover_jobs::connect::{self, Queues};
use drover_queue::{JobOptions, NewJob};

use crate::config::SchedulerConfig;
use crate::leader::Leader;
use crate::schedule::Schedule;

/// How long a fire's idempotency key is remembered.
const FIRE_KEY_TTL: Duration = Duration::from_secs(48 * 3600);

/// Most fires of one schedule enqueued per tick.
const MAX_FIRES_PER_TICK: usize = 10;

/// Runs the scheduler until `shutdown` completes.
pub async fn run(
    config: SchedulerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let redis = connect::redis(&config.common)?;
    let queues = Queues::new(&redis, &config.common)?;
    let schedules = schedule::defaults().context("parse the built-in schedules")?;
    let mut leader = Leader::new(redis, &config.common.namespace, config.lock_ttl);
    let mut since: Option<DateTime<Utc>> = None;
    let mut tick = tokio::time::interval(config.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for s in &schedules {
        tracing::info!(schedule = s.name, cron = s.cron, queue = %s.queue, next = ?s.next_after(Utc::now()), "schedule loaded");
    }
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut shutdown => break,
        }
        let now = Utc::now();
        match leader.hold().await {
            Ok(true) => {
                let from = *since.get_or_insert(now);
                if fire_due(&schedules, &queues, from, now).await {
                    since = Some(now);
                }
            }
            Ok(false) => since = None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach redis for the leader lock; retrying");
                since = None;
            }
        }
    }
    leader.release().await;
    tracing::info!("drover-scheduler stopped");
    Ok(())
}

/// Enqueues every fire in `(from, now]`; false if Redis failed (so the window is retried).
async fn fire_due(
    schedules: &[Schedule],
    queues: &Queues,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    for s in schedules {
        for at in s.fires_between(from, now, MAX_FIRES_PER_TICK) {
            let job = NewJob::raw((s.payload)(at).to_string()).with_options(JobOptions {
                idempotency_key: Some(format!("schedule:{}:{}", s.name, at.timestamp())),
                idempotency_ttl: Some(FIRE_KEY_TTL),
                ..Default::default()
            });
            match queues.get(s.queue).enqueue(job).await {
                Ok(e) => {
                    tracing::info!(schedule = s.name, fire = %at, job.id = e.id, created = e.created, "schedule fired")
                }
                Err(e) => {
                    tracing::warn!(schedule = s.name, fire = %at, error = %e, "could not enqueue a fire; will retry");
                    return false;
                }
            }
        }
    }
    true
}
