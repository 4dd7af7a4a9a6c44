//! The queue's retention, enforced by the worker: one enforcer per queue it serves,
//! archiving into the database's `job_history` before removing from Redis.
//!
//! The enforcement itself (bounded select and remove scripts, a lock so that one worker
//! per queue does it) is `drover_queue::retention`; this module only supplies the SQL
//! side ([`archive::SqlArchive`]) and starts the loops.

pub mod archive;

use drover_jobs::connect::Queues;
use drover_queue::retention::Enforcer;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::WorkerConfig;
pub use archive::SqlArchive;

/// Creates the archive counter of `queue` at zero, so it is scraped before the first
/// archived row.
pub fn zero_series(queue: &str) {
    metrics::counter!(archive::ARCHIVE_ROWS, "queue" => queue.to_owned()).increment(0);
    metrics::gauge!(drover_queue::metrics::ARCHIVE_HOLD, "queue" => queue.to_owned()).set(0.0);
}

/// Starts one enforcer per served queue; they stop when `stop` is cancelled.
pub fn spawn_all(
    config: &WorkerConfig,
    queues: &Queues,
    sink: &SqlArchive,
    stop: &CancellationToken,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let mut tasks = Vec::new();
    if !config.retention.enabled {
        return Ok(tasks);
    }
    for name in config.queues.keys() {
        let retention = config.retention.of(*name);
        let enforcer = Enforcer::new(
            queues.get(*name).clone(),
            retention,
            sink.clone(),
            config.retention.enforcer.clone(),
        )?;
        tracing::info!(
            queue = name.as_str(),
            completed_age_s = retention.completed.max_age.as_secs(),
            completed_count = retention.completed.max_count,
            failed_age_s = retention.failed.max_age.as_secs(),
            failed_count = retention.failed.max_count,
            archive = retention.archive.as_str(),
            "retention"
        );
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move { enforcer.run(stop).await }));
    }
    Ok(tasks)
}
