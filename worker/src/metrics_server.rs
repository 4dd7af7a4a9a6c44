//! The worker's Prometheus endpoint.

use std::net::SocketAddr;

use anyhow::Context as _;
use metrics_exporter_prometheus::PrometheusHandle;
use poem::listener::{Listener, TcpListener};
use poem::web::Data;
use poem::{EndpointExt, IntoResponse, Route, Server, get, handler};
use tokio::task::JoinHandle;

#[handler]
fn metrics(handle: Data<&PrometheusHandle>) -> impl IntoResponse {
    handle
        .render()
        .with_content_type("text/plain; version=0.0.4")
}

#[handler]
fn health() -> &'static str {
    "ok"
}

/// Serves `/metrics` and `/health` on `addr` in the background.
pub async fn spawn(addr: SocketAddr, handle: PrometheusHandle) -> anyhow::Result<JoinHandle<()>> {
    let acceptor = TcpListener::bind(addr)
        .into_acceptor()
        .await
        .with_context(|| format!("listen for metrics on {addr} (DROVER_WORKER_METRICS_ADDR)"))?;
    tracing::info!(addr = %addr, "metrics at http://{addr}/metrics");
    let app = Route::new()
        .at("/metrics", get(metrics))
        .at("/health", get(health))
        .data(handle);
    Ok(tokio::spawn(async move {
        if let Err(e) = Server::new_with_acceptor(acceptor).run(app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    }))
}
