//! The small HTTP server that the worker and the scheduler run beside their work:
//! `/metrics` for Prometheus, `/health` for liveness and `/ready` for readiness.
//!
//! Orchestrators restart a process whose liveness fails and stop sending work to one
//! whose readiness fails, so the two must mean different things: `/health` answers 200
//! whenever the process runs (with the state of what it uses, for people), and `/ready`
//! answers 503 while Redis or the database is unreachable. A process that lost Redis is
//! not broken: it waits and resumes by itself, so restarting it would only lose time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use drover_queue::Redis;
use metrics_exporter_prometheus::PrometheusHandle;
use poem::http::StatusCode;
use poem::listener::{Listener, TcpListener};
use poem::web::{Data, Json};
use poem::{EndpointExt, IntoResponse, Route, Server, get, handler};
use sea_orm::DatabaseConnection;
use tokio::task::JoinHandle;

/// How long a probe waits for Redis or the database before calling it down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the probes check, and the metrics they render.
#[derive(Clone)]
pub struct Probes {
    /// The process's name, shown in `/health`.
    pub process: &'static str,
    pub metrics: PrometheusHandle,
    pub redis: Redis,
    /// `None` for a process that does not use the database.
    pub db: Option<DatabaseConnection>,
}

impl Probes {
    /// Each service the process uses, `up` or `down`.
    pub async fn services(&self) -> BTreeMap<&'static str, &'static str> {
        let up = |ok: bool| if ok { "up" } else { "down" };
        let redis = tokio::time::timeout(PROBE_TIMEOUT, self.redis.ping()).await;
        let mut services = BTreeMap::from([("redis", up(matches!(redis, Ok(Ok(())))))]);
        if let Some(db) = &self.db {
            let ping = tokio::time::timeout(PROBE_TIMEOUT, crate::connect::ping_database(db)).await;
            services.insert("database", up(matches!(ping, Ok(Ok(())))));
        }
        services
    }
}

#[handler]
fn metrics(probes: Data<&Probes>) -> impl IntoResponse {
    probes
        .metrics
        .render()
        .with_content_type("text/plain; version=0.0.4")
}

#[handler]
async fn health(probes: Data<&Probes>) -> impl IntoResponse {
    Json(serde_json::json!({
        "status": "ok",
        "process": probes.process,
        "version": env!("CARGO_PKG_VERSION"),
        "services": probes.services().await,
    }))
}

#[handler]
async fn ready(probes: Data<&Probes>) -> impl IntoResponse {
    let services = probes.services().await;
    let ready = services.values().all(|s| *s == "up");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Json(serde_json::json!({
        "status": if ready { "ready" } else { "unavailable" },
        "services": services,
    }))
    .with_status(status)
}

/// Serves the probes on `addr` in the background. `variable` names the setting that
/// chose the address, for the error when it cannot be bound.
pub async fn spawn(
    addr: SocketAddr,
    variable: &'static str,
    probes: Probes,
) -> anyhow::Result<JoinHandle<()>> {
    let acceptor = TcpListener::bind(addr)
        .into_acceptor()
        .await
        .with_context(|| format!("listen for metrics on {addr} ({variable})"))?;
    tracing::info!(addr = %addr, "metrics at http://{addr}/metrics, probes at /health and /ready");
    let app = Route::new()
        .at("/metrics", get(metrics))
        .at("/health", get(health))
        .at("/ready", get(ready))
        .data(probes);
    Ok(tokio::spawn(async move {
        if let Err(e) = Server::new_with_acceptor(acceptor).run(app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    }))
}
