//! Drover's scheduler: cron schedules from the database, fired once across any number
//! of replicas, with missed-fire and overlap policies and a documented DST rule.
//!
//! Every replica ticks; the one holding the leader lease (a Redis key with a TTL,
//! renewed each tick, [`leader`]) fires. Exactly one job per fire comes from the
//! database and Redis together, not from the lease: each fire's decision is a unique
//! row (schedule, scheduled time) written before anything is enqueued, and its job is
//! enqueued with an idempotency key in the scheduler's own namespace ([`fire`]). Two
//! replicas that both believe they lead (a paused process waking up) still make one
//! job per fire. A new leader starts from the last recorded fire of each schedule
//! ([`runner`]), so failovers and Redis outages lose no fire.
//!
//! # Layout
//!
//! - [`config`]: the settings, read once at start.
//! - [`timing`]: cron expressions in a timezone, and the DST rule.
//! - [`template`]: payload templates with the scheduled time.
//! - [`plan`]: the missed-fire policy, as plain code over an injected `now`.
//! - [`spec`]: what a valid schedule is (shared with the API).
//! - [`store`]: schedules and fire records in the database.
//! - [`fire`]: carrying out one fire.
//! - [`runner`]: the leader's loop body.
//! - [`leader`]: the leader lease.
//! - [`metrics`]: the Prometheus series and endpoint.

pub mod config;
pub mod fire;
pub mod leader;
pub mod metrics;
pub mod plan;
pub mod runner;
pub mod spec;
pub mod store;
pub mod template;
pub mod timing;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use drover_jobs::connect;
use tokio::time::Instant;

use crate::config::SchedulerConfig;
use crate::leader::Leader;
use crate::runner::{Clock, Runner, RunnerOptions, SystemClock};

/// How far past a fire's time the leader wakes, so that the fire is due when it looks.
const WAKE_MARGIN: Duration = Duration::from_millis(2);

/// Runs the scheduler until `shutdown` completes.
pub async fn run(
    config: SchedulerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut shutdown = Box::pin(shutdown);
    let Some(connect::Stores { redis, queues, db }) =
        drover_jobs::shutdown::unless_stopped(connect::Stores::open(&config.common), &mut shutdown)
            .await?
    else {
        return Ok(());
    };
    // The series exist from the first scrape, before the first fire.
    let _ = drover_jobs::telemetry::prometheus();
    for (name, _) in queues.all() {
        drover_queue::metrics::zero_enqueue_series(name.as_str());
    }
    let metrics_task = match config.metrics_addr {
        Some(addr) => {
            let probes = drover_jobs::probes::Probes {
                process: "drover-scheduler",
                metrics: drover_jobs::telemetry::prometheus(),
                redis: redis.clone(),
                db: Some(db.clone()),
            };
            Some(drover_jobs::probes::spawn(addr, "DROVER_SCHEDULER_METRICS_ADDR", probes).await?)
        }
        None => None,
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let to_chrono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    let mut runner = Runner::new(
        db,
        queues,
        clock.clone(),
        RunnerOptions {
            reload: config.reload,
            grace: to_chrono(config.grace),
            fire_retention: to_chrono(config.fire_retention),
        },
    );
    let mut leader = Leader::new(redis, &config.common.namespace, config.lock_ttl);
    let mut leading = false;
    metrics::leader(false);
    tracing::info!(
        tick_ms = config.tick.as_millis() as u64,
        lease_ms = config.lock_ttl.as_millis() as u64,
        "drover-scheduler running"
    );
    let mut wake = Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            () = &mut shutdown => break,
        }
        let held = match leader.hold().await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach redis for the leader lease; retrying");
                false
            }
        };
        if held != leading {
            leading = held;
            metrics::leader(held);
            if held {
                // Start from the database: whoever led before may have fired since.
                runner.reset();
            }
        }
        wake = Instant::now() + config.tick;
        if !held {
            continue;
        }
        match runner.tick().await {
            Ok(Some(next)) => {
                let until = (next - clock.now()).to_std().unwrap_or_default() + WAKE_MARGIN;
                wake = wake.min(Instant::now() + until);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "firing failed; retrying from the database");
                runner.reset();
            }
        }
    }
    if leading {
        metrics::leader(false);
    }
    leader.release().await;
    if let Some(t) = metrics_task {
        t.abort();
    }
    tracing::info!("drover-scheduler stopped");
    Ok(())
}
