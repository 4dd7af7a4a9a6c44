//! Drover's HTTP API (poem + poem-openapi).
//!
//! # Layout
//!
//! - [`config`]: the settings, read once at start.
//! - [`state`]: what every handler shares (Redis, queues, database, key cache, limiter).
//! - [`auth`]: API keys with roles, and the per-key rate limit.
//! - [`error`]: the one error shape of every 4xx and 5xx.
//! - [`payload`]: JSON bodies whose errors name the field at fault.
//! - [`middleware`]: request ids, request logs, HTTP metrics and the body limit.
//! - [`routes`]: the operations, one module per resource.
//! - [`upload`]: dataset uploads streamed to disk and profiled on the way.
//! - [`relay`]: the event relay behind the Server-Sent Events routes.
//! - [`server`]: the HTTP server (hyper's connections, with small buffers).
//! - [`openapi`]: the OpenAPI service that gathers them, and the served document.
//! - [`ui`]: the web dashboard at `/ui`, and its session cookies.

pub mod auth;
pub mod config;
pub mod error;
pub mod listener;
pub mod middleware;
pub mod openapi;
pub mod payload;
pub mod relay;
pub mod routes;
pub mod server;
pub mod state;
pub mod ui;
pub mod upload;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use drover_jobs::connect;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{EndpointExt, Route, Server, get};

use crate::config::ApiConfig;
use crate::state::AppState;

/// Connects to Redis and the database (migrating it unless told not to), and brings
/// the database's keys in line with `DROVER_API_KEYS`.
///
/// # Errors
/// When the database cannot be reached or migrated, or when `DROVER_ENV=prod` and no
/// API key works: a production API that nobody can call, or that anybody could, is a
/// configuration mistake.
pub async fn connect_state(config: ApiConfig) -> anyhow::Result<AppState> {
    let metrics = drover_jobs::telemetry::prometheus();
    let connect::Stores { redis, queues, db } = connect::Stores::open(&config.common).await?;
    for (name, _) in queues.all() {
        drover_queue::metrics::zero_enqueue_series(name.as_str());
    }
    relay::hub::zero_series();
    let sync = auth::keys::sync_env_keys(&db, &config.api_keys)
        .await
        .context("store the keys of DROVER_API_KEYS")?;
    if sync.still_revoked > 0 {
        tracing::warn!(
            keys = sync.still_revoked,
            "DROVER_API_KEYS lists keys that were revoked: they stay revoked"
        );
    }
    let active = if config.common.is_dev() {
        auth::keys::count_active(&db).await
    } else {
        let all = auth::keys::count_active(&db).await;
        let usable = auth::keys::count_active_except(&db, auth::keys::source::DEV).await;
        if let (Ok(all), Ok(usable)) = (&all, &usable)
            && all > usable
        {
            tracing::warn!(
                "the development key of `drover up` is in the database; it is refused with \
                 DROVER_ENV=prod (revoke it with `drover keys revoke`)"
            );
        }
        usable
    }
    .context("count the API keys")?;
    if active == 0 {
        if config.common.is_dev() {
            tracing::warn!(
                "no API key: every request will be refused; set DROVER_API_KEYS or run \
                 `drover keys create --role admin`"
            );
        } else {
            anyhow::bail!(
                "DROVER_ENV=prod and no API key: set DROVER_API_KEYS (role:key,…) or run \
                 `drover keys create --role admin`"
            );
        }
    }
    tracing::info!(
        active,
        added = sync.added,
        revoked = sync.revoked,
        "API keys ready"
    );
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
    let api = openapi::service();
    let spec = openapi::spec_json(&api);
    let docs = openapi::swagger_html(&api);
    let mut methods = openapi::allowed_methods(&spec);
    let own_metrics = state.config().metrics_addr.is_none();
    for path in ["/health", "/ready", "/metrics", "/openapi.json", "/docs"] {
        if path != "/metrics" || own_metrics {
            methods.push((path.to_owned(), "GET, HEAD".to_owned()));
        }
    }
    methods.extend(ui::allowed_methods());
    let limit = state.config().body_limit;
    let mut route = Route::new()
        .nest("/", api)
        .at(
            "/openapi.json",
            get(poem::endpoint::make_sync(move |_| {
                poem::Response::builder()
                    .content_type("application/json")
                    .body(spec.clone())
            })),
        )
        .at(
            "/docs",
            get(poem::endpoint::make_sync(move |_| {
                poem::web::Html(docs.clone())
            })),
        )
        .at("/health", get(routes::health::health))
        .at("/ready", get(routes::health::ready))
        .nest("/ui", ui::routes());
    if own_metrics {
        route = route.at("/metrics", get(routes::health::metrics));
    }
    route
        .with(ui::session::SessionAuth)
        .with(middleware::BodyLimit(limit))
        .with(middleware::TextHeaders)
        .data(state)
        .catch_all_error(error::envelope)
        .with(middleware::AllowOn405(std::sync::Arc::new(methods)))
        .with(middleware::Observe)
}

/// `/metrics` alone, for its own listener (`DROVER_METRICS_ADDR`).
pub fn metrics_app(state: AppState) -> impl poem::Endpoint + 'static {
    Route::new()
        .at("/metrics", get(routes::health::metrics))
        .data(state)
        .catch_all_error(error::envelope)
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
    // A stop asked for while connecting (a database that is slow to answer) is a
    // stop, not a wait for the connection first.
    let mut shutdown = Box::pin(shutdown);
    let Some(state) =
        drover_jobs::shutdown::unless_stopped(connect_state(config), &mut shutdown).await?
    else {
        return Ok(());
    };
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
    // `/metrics` on its own listener, stopped with the API.
    let (metrics_stop, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics_task = match state.config().metrics_addr {
        None => None,
        Some(addr) => {
            let acceptor = TcpListener::bind(addr)
                .into_acceptor()
                .await
                .with_context(|| format!("listen for metrics on {addr} (DROVER_METRICS_ADDR)"))?;
            tracing::info!(addr = %addr, "metrics at http://{addr}/metrics");
            let app = metrics_app(state.clone());
            Some(tokio::spawn(async move {
                let stopped = async move {
                    let _ = metrics_stopped.await;
                };
                if let Err(e) = Server::new_with_acceptor(acceptor)
                    .run_with_graceful_shutdown(app, stopped, Some(Duration::from_secs(1)))
                    .await
                {
                    tracing::error!(error = %e, "metrics server stopped");
                }
            }))
        }
    };
    let relay = state.relay().clone();
    let served = server::run(acceptor, app(state), shutdown, Duration::from_secs(10))
        .await
        .context("serve HTTP");
    relay.stop();
    let _ = metrics_stop.send(());
    if let Some(t) = metrics_task {
        let _ = t.await;
    }
    served
}
