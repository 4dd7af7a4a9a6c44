//! Drover's HTTP API (poem + poem-openapi).
//!
//! # Layout
//!
//! - [`config`]: the settings, read once at start.
//! - [`state`]: what every handler shares (Redis, queues, database, metrics).
//! - [`error`]: the one error shape of every 4xx and 5xx.
//! - [`middleware`]: request ids, request logs and HTTP metrics.
//! - [`routes`]: the operations, one module per resource.
//! - [`relay`]: the event relay behind the Server-Sent Events routes.
//! - [`openapi`]: the OpenAPI service that gathers them.

pub mod config;
pub mod error;
pub mod listener;
pub mod middleware;
pub mod openapi;
pub mod relay;
pub mod routes;
pub mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use drover_jobs::connect;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{EndpointExt, Route, Server, get};

use crate::config::ApiConfig;
use crate::state::AppState;

/// Connects to Redis and the database (migrating it unless told not to).
pub async fn connect_state(config: ApiConfig) -> anyhow::Result<AppState> {
    let metrics = drover_jobs::telemetry::prometheus();
    let redis = connect::redis(&config.common)?;
    let queues = connect::Queues::new(&redis, &config.common)?;
    let db = connect::database(&config.common.database_url).await?;
    if config.common.auto_migrate {
        connect::migrate(&db).await?;
    }
    let wait = config.common.redis_connect_timeout;
    let state = AppState::new(config, redis, queues, db, metrics);
    state.relay().start();
    if !state.relay().wait_ready(wait).await {
        tracing::warn!("the event relay has not reached Redis yet; it keeps trying");
    }
    Ok(state)
}

/// The whole HTTP application over `state`.
pub fn app(state: AppState) -> impl poem::Endpoint + 'static {
    let api = openapi::service(state.clone());
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    let limit = state.config().body_limit;
    Route::new()
        .nest("/", api)
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .at("/health", get(routes::health::health))
        .at("/ready", get(routes::health::ready))
        .at("/metrics", get(routes::health::metrics))
        .with(middleware::BodyLimit(limit))
        .data(state)
        .catch_all_error(error::envelope)
        .with(middleware::Observe)
}

/// Serves the API on `config.addr` until `shutdown` completes, then drains requests.
pub async fn serve(
    config: ApiConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = config.addr;
    let acceptor = TcpListener::bind(addr)
        .into_acceptor()
        .await
        .with_context(|| format!("listen on {addr}"))?;
    serve_on(config, listener::NoDelay(acceptor), shutdown).await
}

/// Serves the API on an acceptor that is already bound (tests bind port 0).
pub async fn serve_on<A: Acceptor + 'static>(
    config: ApiConfig,
    acceptor: A,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = connect_state(config).await?;
    let local: Vec<SocketAddr> = acceptor
        .local_addr()
        .iter()
        .filter_map(|a| a.as_socket_addr().copied())
        .collect();
    for a in &local {
        tracing::info!(addr = %a, docs = %format!("http://{a}/docs"), "drover-api listening");
    }
    // Event streams never end on their own: end them when shutdown starts, so the
    // drain does not wait its whole timeout (clients resume elsewhere).
    let relay = state.relay().clone();
    let shutdown = async move {
        shutdown.await;
        relay.close_clients();
    };
    let relay = state.relay().clone();
    let served = Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(app(state), shutdown, Some(Duration::from_secs(10)))
        .await
        .context("serve HTTP");
    relay.stop();
    served
}
