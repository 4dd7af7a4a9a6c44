//! Applies the configured flow limits (`DROVER_RATE_LIMIT`, `DROVER_MAX_ACTIVE`) of
//! the served queues to Redis, where the fetch script enforces them for every worker.
//!
//! A limit an admin set at run time (`PATCH /api/v1/queues/{queue}`) stands: a
//! worker's configuration does not overwrite it (see `drover_queue::flow`). Seeding
//! retries through a Redis outage in the background, so it never holds up the start.

use drover_jobs::QueueName;
use drover_jobs::connect::Queues;
use drover_queue::FlowLimits;
use tokio::task::JoinHandle;

use crate::config::WorkerConfig;

/// Starts seeding the limits of every served queue; the task ends once all are written.
pub fn seed_all(config: &WorkerConfig, queues: &Queues) -> JoinHandle<()> {
    let plan: Vec<(QueueName, drover_queue::Queue, FlowLimits)> = config
        .queues
        .keys()
        .map(|&q| (q, queues.get(q).clone(), config.flow_limits(q)))
        .collect();
    tokio::spawn(async move {
        for (name, queue, limits) in plan {
            let mut failures = 0u32;
            loop {
                match queue.seed_flow_limits(limits).await {
                    Ok(written) => {
                        tracing::info!(
                            queue = %name,
                            rate_limit = limits.rate_limit.map(|r| r.to_string()),
                            max_active = limits.max_active,
                            applied = written,
                            "flow limits {}",
                            if written { "applied from configuration" } else { "left as an admin set them" }
                        );
                        break;
                    }
                    Err(e) => {
                        failures += 1;
                        if failures == 1 || failures.is_multiple_of(10) {
                            tracing::warn!(queue = %name, error = %e, "cannot apply flow limits yet; retrying");
                        }
                        tokio::time::sleep(drover_queue::reconnect_delay(failures)).await;
                    }
                }
            }
        }
    })
}
