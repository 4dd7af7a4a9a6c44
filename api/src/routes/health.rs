//! Liveness, readiness and metrics.

use std::collections::BTreeMap;
use std::time::Duration;

use poem::web::Data;
use poem::{IntoResponse, handler, http::StatusCode};

use crate::state::AppState;

/// How long a health probe waits for Redis or the database.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

async fn services(state: &AppState) -> BTreeMap<&'static str, &'static str> {
    let redis = tokio::time::timeout(PROBE_TIMEOUT, state.redis().ping()).await;
    let db = tokio::time::timeout(
        PROBE_TIMEOUT,
        drover_jobs::connect::ping_database(state.db()),
    )
    .await;
    let up = |ok: bool| if ok { "up" } else { "down" };
    BTreeMap::from([
        ("redis", up(matches!(redis, Ok(Ok(()))))),
        ("database", up(matches!(db, Ok(Ok(()))))),
    ])
}

/// Liveness: 200 while the process serves requests, with the state of what it uses.
#[handler]
pub async fn health(state: Data<&AppState>) -> impl IntoResponse {
    let services = services(&state).await;
    poem::web::Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "services": services,
    }))
}

/// Readiness: 200 when Redis and the database both answer, 503 otherwise.
#[handler]
pub async fn ready(state: Data<&AppState>) -> impl IntoResponse {
    let services = services(&state).await;
    let ready = services.values().all(|s| *s == "up");
    let body = poem::web::Json(serde_json::json!({
        "status": if ready { "ready" } else { "unavailable" },
        "services": services,
    }));
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    body.with_status(status)
}

/// Prometheus metrics of this process.
#[handler]
pub async fn metrics(state: Data<&AppState>) -> impl IntoResponse {
    state
        .metrics()
        .render()
        .with_content_type("text/plain; version=0.0.4")
}
