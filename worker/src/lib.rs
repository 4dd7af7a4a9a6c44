//! Drover's worker: an apalis `Monitor` with one worker per queue it serves, each fed
//! by Drover's own Redis backend (`drover_queue::worker::DroverBackend`).
//!
//! # Layout
//!
//! - [`config`]: the settings, read once at start.
//! - [`deps`]: what handlers share (database, Redis, queues, data directory).
//! - [`jobs`]: one module per job kind, and the list that registers them.
//! - [`metrics_server`]: the process's Prometheus endpoint.

pub mod config;
pub mod deps;
pub mod jobs;
pub mod metrics_server;

use std::future::Future;

use anyhow::Context as _;
use apalis::prelude::Monitor;
use drover_jobs::connect;
use drover_queue::worker::WakeHub;

use crate::config::WorkerConfig;
use crate::deps::Deps;

/// Runs the worker until `shutdown` completes, then lets running jobs finish (up to
/// the shutdown timeout), hands back what was leased but not started, and returns.
pub async fn run(
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = drover_jobs::telemetry::prometheus();
    let connect::Stores { redis, queues, db } = connect::Stores::open(&config.common).await?;
    let hub = WakeHub::start(redis.clone(), &config.common.namespace);
    let deps = Deps {
        db,
        redis: redis.clone(),
        queues: queues.clone(),
        data_dir: config.common.data_dir.clone(),
        analysis: config.analysis,
    };
    let metrics_task = match config.metrics_addr {
        Some(addr) => Some(metrics_server::spawn(addr, metrics).await?),
        None => None,
    };
    let monitor = jobs::register_all(Monitor::new(), &config, &queues, &hub, &deps)
        .shutdown_timeout(config.shutdown_timeout);
    tracing::info!(
        queues = ?config.queues.keys().map(|q| q.as_str()).collect::<Vec<_>>(),
        redis = %drover_queue::connection::redact(&config.common.redis_url),
        "drover-worker running"
    );
    let result = monitor
        .run_with_signal(async move {
            shutdown.await;
            Ok(())
        })
        .await
        .context("run the workers");
    if let Some(t) = metrics_task {
        t.abort();
    }
    tracing::info!("drover-worker stopped");
    result
}
