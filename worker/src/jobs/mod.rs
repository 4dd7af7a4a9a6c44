//! The job handlers, one module per kind, and the one list that registers them.
//!
//! Each handler is `async fn handle(payload, ctx: JobContext, deps: Data<Deps>) ->
//! Result<Summary, JobError>`: it classifies its errors as retryable or permanent,
//! and reports progress through `ctx`.

pub mod aggregation;
pub mod analysis;
pub mod cleanup;
pub mod export;

use apalis::prelude::*;
use drover_jobs::QueueName;
use drover_jobs::connect::Queues;
use drover_jobs::kinds::{
    AggregationPayload, AnalysisPayload, CleanupPayload, ExportPayload, JobKind,
};
use drover_queue::worker::{DroverBackend, WakeHub};

use crate::config::WorkerConfig;
use crate::deps::Deps;

/// Registers one apalis worker for job kind `$kind` with handler `$handler`, if this
/// process serves its queue. The factory builds a fresh backend (and identity) each
/// time the monitor (re)starts the worker.
macro_rules! register {
    ($monitor:expr, $config:expr, $queues:expr, $hub:expr, $deps:expr, $kind:ty, $handler:path) => {{
        let name = <$kind as JobKind>::QUEUE;
        match $config.queues.get(&name) {
            None => $monitor,
            Some(opts) => {
                let (opts, queue, hub, deps) = (
                    opts.clone(),
                    $queues.get(name).clone(),
                    $hub.clone(),
                    $deps.clone(),
                );
                $monitor.register(move |_restarts| {
                    let backend =
                        DroverBackend::<$kind>::new(queue.clone(), hub.clone(), opts.clone());
                    WorkerBuilder::new(backend.worker_id().to_owned())
                        .backend(backend)
                        .data(deps.clone())
                        .concurrency(opts.concurrency)
                        .build($handler)
                })
            }
        }
    }};
}

/// Every job kind, one line each.
pub fn register_all(
    monitor: Monitor,
    config: &WorkerConfig,
    queues: &Queues,
    hub: &WakeHub,
    deps: &Deps,
) -> Monitor {
    let m = monitor;
    let m = register!(m, config, queues, hub, deps, ExportPayload, export::handle);
    let m = register!(
        m,
        config,
        queues,
        hub,
        deps,
        AnalysisPayload,
        analysis::handle
    );
    let m = register!(
        m,
        config,
        queues,
        hub,
        deps,
        AggregationPayload,
        aggregation::handle
    );
    register!(
        m,
        config,
        queues,
        hub,
        deps,
        CleanupPayload,
        cleanup::handle
    )
}

/// The queues `register_all` knows, so a test can check none is forgotten.
pub const REGISTERED: [QueueName; 4] = [
    <ExportPayload as JobKind>::QUEUE,
    <AnalysisPayload as JobKind>::QUEUE,
    <AggregationPayload as JobKind>::QUEUE,
    <CleanupPayload as JobKind>::QUEUE,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_queue_has_exactly_one_handler() {
        let mut registered = REGISTERED.to_vec();
        registered.sort();
        let mut all = QueueName::ALL.to_vec();
        all.sort();
        assert_eq!(registered, all);
    }
}
