//! The apalis `Backend` over a Drover queue.

use std::marker::PhantomData;
use std::task::{Context, Poll};

use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::task::Task;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::context::WorkerContext;
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::WorkerOptions;
use super::context::{JobContext, ProgressBuffer};
use super::driver::{AckMsg, Channels, Driver};
use super::layer::AckLayer;
use super::wake::WakeHub;
use crate::error::QueueError;
use crate::options::Backoff;
use crate::queue::{AckItem, Leased, Outcome, Queue};

/// Feeds one apalis worker from one Drover queue. See the [module docs](super).
///
/// ```text
/// let backend = DroverBackend::<Export>::new(queue, hub.clone(), options.clone());
/// let worker = WorkerBuilder::new(backend.worker_id())
///     .backend(backend)
///     .concurrency(options.concurrency)
///     .build(handle_export);
/// ```
pub struct DroverBackend<Args> {
    queue: Queue,
    hub: WakeHub,
    opts: WorkerOptions,
    worker_id: String,
    progress: ProgressBuffer,
    ack_tx: mpsc::UnboundedSender<AckMsg>,
    /// The channel ends the driver takes when it starts.
    unstarted: Option<(mpsc::Sender<Leased>, mpsc::UnboundedReceiver<AckMsg>)>,
    jobs: mpsc::Receiver<Leased>,
    driver: Option<Driver>,
    closing: Option<BoxFuture<'static, ()>>,
    _args: PhantomData<fn() -> Args>,
}

impl<Args> std::fmt::Debug for DroverBackend<Args> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DroverBackend")
            .field("queue", &self.queue.name())
            .field("worker_id", &self.worker_id)
            .finish_non_exhaustive()
    }
}

impl<Args> DroverBackend<Args> {
    /// A backend for `queue`; nothing happens until the worker first polls it.
    #[must_use]
    pub fn new(queue: Queue, hub: WakeHub, opts: WorkerOptions) -> Self {
        let worker_id = super::worker_id(queue.name());
        let capacity = opts.concurrency + opts.prefetch + 1;
        let (jobs_tx, jobs) = mpsc::channel(capacity);
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        Self {
            queue,
            hub,
            opts,
            worker_id,
            progress: ProgressBuffer::default(),
            ack_tx,
            unstarted: Some((jobs_tx, ack_rx)),
            jobs,
            driver: None,
            closing: None,
            _args: PhantomData,
        }
    }

    /// This worker's unique identity, as its heartbeats and leases show it.
    #[must_use]
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    fn start(&mut self) {
        if let Some((jobs_tx, ack_rx)) = self.unstarted.take() {
            self.driver = Some(Driver::start(
                self.queue.clone(),
                self.hub.clone(),
                self.opts.clone(),
                self.worker_id.clone(),
                self.progress.clone(),
                Channels {
                    jobs: jobs_tx,
                    ack_tx: self.ack_tx.clone(),
                    acks: ack_rx,
                },
            ));
        }
    }

    fn fail(&self, id: String, token: u64, error: String) {
        let _ = self.ack_tx.send(AckMsg::Done(AckItem {
            id,
            token,
            outcome: Outcome::Fail { error },
        }));
    }
}

impl<Args: DeserializeOwned + Send + Sync + 'static> DroverBackend<Args> {
    /// The task for a leased job, or why its payload does not fit this queue's type.
    fn to_task(&self, job: Leased) -> Result<Task<Args>, String> {
        let args: Args = serde_json::from_str(&job.payload)
            .map_err(|e| format!("payload does not fit queue {}: {e}", self.queue.name()))?;
        let backoff = if job.backoff.is_empty() {
            self.queue.defaults().backoff.clone()
        } else {
            serde_json::from_str::<Backoff>(&job.backoff)
                .unwrap_or_else(|_| self.queue.defaults().backoff.clone())
        };
        let ctx = JobContext::new(
            job.id.clone(),
            self.queue.name().to_owned(),
            job.attempt,
            job.max_attempts,
            job.token,
            (!job.request_id.is_empty()).then(|| job.request_id.clone()),
            (!job.traceparent.is_empty()).then(|| job.traceparent.clone()),
            backoff,
            self.progress.clone(),
            job.lease_lost.clone(),
        )
        .with_deferrals(job.deferrals);
        // apalis counts the attempt up as the handler starts: hand it the one before.
        Ok(TaskBuilder::new(args)
            .task_id(TaskId::String(job.id))
            .attempt(job.attempt.saturating_sub(1) as usize)
            .max_attempts(job.max_attempts as usize)
            .data(ctx)
            .build())
    }
}

impl<Args: DeserializeOwned + Send + Sync + 'static> Backend for DroverBackend<Args> {
    type Task = Task<Args>;
    type Error = QueueError;

    fn poll_ready(
        &mut self,
        _cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        self.start();
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        self.start();
        loop {
            match self.jobs.poll_recv(cx) {
                Poll::Ready(Some(job)) => {
                    let (id, token) = (job.id.clone(), job.token);
                    match self.to_task(job) {
                        Ok(task) => return Poll::Ready(Some(Ok(task))),
                        Err(msg) => {
                            tracing::error!(
                                queue = self.queue.name(),
                                job.id = id,
                                error = msg,
                                "job failed"
                            );
                            self.fail(id, token, msg);
                        }
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        if self.closing.is_none() {
            // No more deliveries; whatever was delivered but not started goes back.
            self.jobs.close();
            let mut unstarted = Vec::new();
            while let Ok(job) = self.jobs.try_recv() {
                unstarted.push((job.id, job.token));
            }
            let fut: BoxFuture<'static, ()> = match self.driver.as_mut() {
                Some(d) => Box::pin(d.close(unstarted)),
                None => Box::pin(async {}),
            };
            self.closing = Some(fut);
        }
        match self.closing.as_mut() {
            Some(f) => f.as_mut().poll(cx).map(Ok),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl<Args> BackendConfig for DroverBackend<Args> {
    type Args = Args;
    type Id = String;
    type Kind = Ephemeral;
    type Config = WorkerOptions;
    type Layer = AckLayer;

    fn config(&self) -> &Self::Config {
        &self.opts
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> Self::Layer {
        AckLayer::new(self.ack_tx.clone())
    }
}
