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

/// Runs `start` (a process's connections and migrations) unless `stop` completes
/// first, in which case it returns `Ok(None)` and `start` is dropped mid-way.
///
/// Every binary starts through this, so that a stop asked for while a database is slow
/// to answer is a stop at once, not a wait for the connection's timeout first.
///
/// # Errors
/// `start`'s error.
pub async fn unless_stopped<T, E>(
    start: impl Future<Output = Result<T, E>>,
    stop: &mut (impl Future<Output = ()> + Unpin),
) -> Result<Option<T>, E> {
    tokio::select! {
        started = start => started.map(Some),
        () = stop => {
            tracing::info!("stopped before it was ready");
            Ok(None)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stop_during_start_up_drops_it() {
        let mut stop = Box::pin(async {});
        let started: Result<Option<()>, ()> =
            unless_stopped(std::future::pending(), &mut stop).await;
        assert_eq!(started, Ok(None));
    }

    #[tokio::test]
    async fn a_start_up_that_ends_first_is_its_result() {
        let mut stop = Box::pin(std::future::pending::<()>());
        assert_eq!(
            unless_stopped(async { Ok::<_, ()>(7) }, &mut stop).await,
            Ok(Some(7))
        );
        assert_eq!(
            unless_stopped(async { Err::<(), _>("no db") }, &mut stop).await,
            Err("no db")
        );
    }
}
