//! The middleware that turns each handler call into an outcome for the acknowledger.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll};
use std::time::Instant;

use apalis_core::error::{AbortError, BoxDynError, RetryAfterError};
use apalis_core::task::Task;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use tokio::sync::mpsc;
use tower::{Layer, Service};
use tracing::Instrument;

use super::context::{JobContext, JobError, JobErrorKind};
use super::driver::AckMsg;
use crate::metrics as m;
use crate::queue::{AckItem, Outcome};

/// Wraps a worker's service so every finished attempt is recorded in Redis.
#[derive(Clone)]
pub struct AckLayer {
    tx: mpsc::UnboundedSender<AckMsg>,
}

impl AckLayer {
    pub(crate) fn new(tx: mpsc::UnboundedSender<AckMsg>) -> Self {
        Self { tx }
    }
}

impl<S> Layer<S> for AckLayer {
    type Service = AckService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AckService {
            inner,
            tx: self.tx.clone(),
        }
    }
}

/// See [`AckLayer`].
#[derive(Clone)]
pub struct AckService<S> {
    inner: S,
    tx: mpsc::UnboundedSender<AckMsg>,
}

/// A handler panicked; the attempt counts as a retryable failure.
#[derive(Debug, thiserror::Error)]
#[error("handler panicked: {0}")]
pub struct HandlerPanicked(pub String);

impl<S, Args> Service<Task<Args>> for AckService<S>
where
    S: Service<Task<Args>>,
    S::Error: Into<BoxDynError>,
    S::Response: Serialize + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<S::Response, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Args>) -> Self::Future {
        let ctx = task.data().get::<JobContext>().cloned();
        let fut = self.inner.call(task);
        let Some(ctx) = ctx else {
            return Box::pin(async move { fut.await.map_err(Into::into) });
        };
        let tx = self.tx.clone();
        let span = tracing::info_span!(
            "job",
            job.id = ctx.id(),
            queue = ctx.queue(),
            attempt = ctx.attempt(),
            request_id = ctx.request_id().unwrap_or(""),
            traceparent = ctx.traceparent().unwrap_or(""),
        );
        if let Some(tp) = ctx.traceparent() {
            crate::trace::set_parent(&span, tp);
        }
        Box::pin(
            async move {
                let started = Instant::now();
                let res = AssertUnwindSafe(fut).catch_unwind().await;
                let elapsed = started.elapsed();
                let (outcome, res) = match res {
                    Ok(Ok(resp)) => {
                        let json = serde_json::to_string(&resp).unwrap_or_else(|_| "null".to_owned());
                        (Outcome::Completed(json), Ok(resp))
                    }
                    Ok(Err(e)) => {
                        let e: BoxDynError = e.into();
                        (failure(&ctx, e.as_ref()), Err(e))
                    }
                    Err(panic) => {
                        let e = HandlerPanicked(panic_message(panic.as_ref()));
                        let outcome = retry(&ctx, e.to_string());
                        (outcome, Err(Box::new(e) as BoxDynError))
                    }
                };
                let label = match &outcome {
                    Outcome::Completed(_) => "completed",
                    Outcome::Retry { .. } if ctx.is_last_attempt() => "failed",
                    Outcome::Retry { .. } => "retried",
                    Outcome::Fail { .. } => "failed",
                    Outcome::Defer { .. } if ctx.deferrals() >= ctx.max_attempts() => "failed",
                    Outcome::Defer { .. } => "deferred",
                };
                metrics::histogram!(m::RUN_SECONDS, "queue" => ctx.queue().to_owned(), "outcome" => label)
                    .record(elapsed.as_secs_f64());
                match &outcome {
                    Outcome::Completed(_) => {
                        tracing::debug!(elapsed_ms = elapsed.as_millis() as u64, "job completed");
                    }
                    Outcome::Retry { error, delay } if !ctx.is_last_attempt() => tracing::warn!(
                        elapsed_ms = elapsed.as_millis() as u64,
                        retry_in_ms = delay.as_millis() as u64,
                        error = error.as_str(),
                        "job attempt failed; will retry"
                    ),
                    Outcome::Defer { reason, delay, pause_rate } => tracing::info!(
                        elapsed_ms = elapsed.as_millis() as u64,
                        retry_in_ms = delay.as_millis() as u64,
                        rate_paused = *pause_rate,
                        reason = reason.as_str(),
                        "job deferred by its handler"
                    ),
                    Outcome::Retry { error, .. } | Outcome::Fail { error } => tracing::error!(
                        elapsed_ms = elapsed.as_millis() as u64,
                        error = error.as_str(),
                        "job failed"
                    ),
                }
                let item = AckItem {
                    id: ctx.id().to_owned(),
                    token: ctx.token(),
                    outcome,
                };
                if tx.send(AckMsg::Done(item)).is_err() {
                    tracing::error!("the acknowledger is gone; this job runs again when its lease expires");
                }
                res
            }
            .instrument(span),
        )
    }
}

/// Decides what a handler's error means.
fn failure(ctx: &JobContext, err: &(dyn std::error::Error + Send + Sync + 'static)) -> Outcome {
    if let Some(je) = err.downcast_ref::<JobError>() {
        return match je.kind() {
            JobErrorKind::Permanent => Outcome::Fail {
                error: je.to_string(),
            },
            JobErrorKind::RetryAfter(d) => defer(ctx, je.to_string(), d, false),
            JobErrorKind::RateLimited(d) => defer(ctx, je.to_string(), d, true),
            JobErrorKind::Retryable => retry(ctx, je.to_string()),
        };
    }
    if let Some(abort) = err.downcast_ref::<AbortError>() {
        return Outcome::Fail {
            error: error_chain(abort),
        };
    }
    if let Some(ra) = err.downcast_ref::<RetryAfterError>() {
        return defer(ctx, error_chain(ra), ra.get_duration(), false);
    }
    retry(ctx, error_chain(err))
}

/// A deferral (`retry_after`): the job runs again after the delay the handler asked
/// for, capped by the backoff's `max_delay_ms` (the queue's, unless the job has its
/// own) so that no handler can park a job for ages; it spends no attempt.
fn defer(
    ctx: &JobContext,
    reason: String,
    after: std::time::Duration,
    pause_rate: bool,
) -> Outcome {
    let max = std::time::Duration::from_millis(ctx.backoff().max_delay_ms);
    Outcome::Defer {
        reason,
        delay: after.min(max),
        pause_rate,
    }
}

/// The retry after a failed attempt, after the job's backoff.
fn retry(ctx: &JobContext, error: String) -> Outcome {
    let delay = ctx.backoff().delay(ctx.attempt(), rand::random::<f64>());
    Outcome::Retry { error, delay }
}

/// The error and its sources, `outer: inner: root`.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
    }
    s
}

fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}
