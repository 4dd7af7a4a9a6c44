//! Waiting for the signal to stop.

use std::future::Future;

use tokio::signal::unix::{Signal, SignalKind, signal as listen};

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
///
/// The handlers are installed when this is called, not when the future is first
/// polled: a process calls it first thing, so that a SIGTERM that comes while it is
/// still connecting (an orchestrator stopping a pod that has just started) stops it
/// gracefully instead of killing it with the signal's default action.
///
/// Call it inside a Tokio runtime.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    let mut int = install(SignalKind::interrupt(), "SIGINT");
    let mut term = install(SignalKind::terminate(), "SIGTERM");
    async move {
        tokio::select! {
            () = received(&mut int) => tracing::info!("Ctrl-C: shutting down"),
            () = received(&mut term) => tracing::info!("SIGTERM: shutting down"),
        }
    }
}

fn install(kind: SignalKind, name: &str) -> Option<Signal> {
    listen(kind)
        .map_err(|e| tracing::error!(error = %e, signal = name, "cannot handle the signal"))
        .ok()
}

/// Completes when `s` is delivered; never, for a signal that could not be handled.
async fn received(s: &mut Option<Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}
