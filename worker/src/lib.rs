//! Drover's worker: an apalis `Monitor` with one worker per queue it serves, each fed
//! by Drover's own Redis backend (`drover_queue::worker::DroverBackend`).
//!
//! # Layout
//!
//! - [`config`]: the settings, read once at start.
//! - [`deps`]: what handlers share (database, Redis, queues, data directory).
//! - [`jobs`]: one module per job kind, and the list that registers them; each handler
//!   only unpacks its job and calls the work of its kind:
//! - [`export`], [`aggregation`], [`cleanup`]: that work, as plain code over a database
//!   connection, a Redis handle and the data directory.
//! - [`retention`]: the queues' retention, archiving into the database.
//! - [`calibration`]: the analysis throughput measured at start, for estimates.

pub mod aggregation;
pub mod calibration;
pub mod cleanup;
pub mod config;
pub mod deps;
pub mod export;
pub mod flow;
pub mod jobs;
pub mod retention;

use std::future::Future;

use anyhow::Context as _;
use apalis::prelude::Monitor;
use drover_jobs::connect;
use drover_queue::worker::WakeHub;

use crate::config::WorkerConfig;
use crate::deps::Deps;

/// Runs the worker until `shutdown` completes, then stops leasing, lets running jobs
/// finish (up to the shutdown timeout), hands back what was leased but not started and
/// what was still running at the timeout, and returns.
pub async fn run(
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = drover_jobs::telemetry::prometheus();
    let mut shutdown = Box::pin(shutdown);
    let Some(connect::Stores { redis, queues, db }) =
        drover_jobs::shutdown::unless_stopped(connect::Stores::open(&config.common), &mut shutdown)
            .await?
    else {
        return Ok(());
    };
    // Every per-queue series exists from the first scrape, at zero.
    for q in config.queues.keys() {
        drover_queue::metrics::zero_worker_series(q.as_str());
        retention::zero_series(q.as_str());
    }
    drover_analysis::metrics::zero_series();
    let hub = WakeHub::start(redis.clone(), &config.common.namespace);
    let stop_retention = tokio_util::sync::CancellationToken::new();
    let retention_tasks = retention::spawn_all(
        &config,
        &queues,
        &retention::SqlArchive::new(db.clone()),
        &stop_retention,
    )?;
    let flow_task = flow::seed_all(&config, &queues);
    let deps = Deps {
        db,
        redis: redis.clone(),
        queues: queues.clone(),
        data_dir: config.common.data_dir.clone(),
        export_ttl: config.export_ttl,
        stats_window: config.common.stats_window,
        namespace: config.common.namespace.clone(),
        analysis: config.analysis,
    };
    // In the background: the queues start at once, estimates have a figure soon after.
    let calibration_task = config
        .queues
        .contains_key(&drover_jobs::QueueName::Analysis)
        .then(|| {
            let (db, dir) = (deps.db.clone(), deps.data_dir.clone());
            tokio::spawn(async move { calibration::measure_and_store(&db, &dir).await })
        });
    let metrics_task = match config.metrics_addr {
        Some(addr) => {
            let probes = drover_jobs::probes::Probes {
                process: "drover-worker",
                metrics,
                redis: redis.clone(),
                db: Some(deps.db.clone()),
            };
            Some(drover_jobs::probes::spawn(addr, "DROVER_WORKER_METRICS_ADDR", probes).await?)
        }
        None => None,
    };
    let monitor = jobs::register_all(Monitor::new(), &config, &queues, &hub, &deps)
        .shutdown_timeout(config.shutdown_timeout);
    tracing::info!(
        queues = ?config.queues.keys().map(|q| q.as_str()).collect::<Vec<_>>(),
        redis = %drover_queue::connection::redact(&config.common.redis_url),
        "drover-worker running"
    );
    let stopping = hub.clone();
    let result = monitor
        .run_with_signal(async move {
            shutdown.await;
            // No fetcher leases another job from here on; running jobs drain.
            stopping.stop_fetching();
            Ok(())
        })
        .await
        .context("run the workers");
    // Workers still running at the shutdown timeout were dropped; their jobs go back
    // to the queue now, not when their leases expire.
    hub.handed_back().await;
    // A step in flight finishes (its archive commits and its removal runs) before
    // the process exits; a killed process leaves at most a batch to re-archive.
    stop_retention.cancel();
    for t in retention_tasks {
        let _ = t.await;
    }
    if let Some(t) = metrics_task {
        t.abort();
    }
    flow_task.abort();
    if let Some(t) = calibration_task {
        t.abort();
    }
    tracing::info!("drover-worker stopped");
    result
}
