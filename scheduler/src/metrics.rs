//! The scheduler's Prometheus series, and the endpoint that serves them.
//!
//! | series | type | labels | meaning |
//! |---|---|---|---|
//! | `drover_schedule_fires_total` | counter | `schedule`, `trigger` (`schedule`, `manual`) | fires enqueued |
//! | `drover_schedule_fires_skipped_total` | counter | `schedule`, `reason` (`missed`, `overlap`, `invalid`) | fires recorded as skipped |
//! | `drover_schedule_fires_missed_total` | counter | `schedule` | fires found more than the grace late (whatever the policy then did) |
//! | `drover_schedule_lateness_seconds` | histogram | `schedule` | enqueue time − scheduled time, of scheduled fires |
//! | `drover_scheduler_leader` | gauge | — | 1 while this replica leads |

use std::net::SocketAddr;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use drover_entities::schedule_fire;
use metrics_exporter_prometheus::PrometheusHandle;
use poem::listener::{Listener, TcpListener};
use poem::web::Data;
use poem::{EndpointExt, IntoResponse, Route, Server, get, handler};
use tokio::task::JoinHandle;

pub const FIRES: &str = "drover_schedule_fires_total";
pub const SKIPPED: &str = "drover_schedule_fires_skipped_total";
pub const MISSED: &str = "drover_schedule_fires_missed_total";
pub const LATENESS: &str = "drover_schedule_lateness_seconds";
pub const LEADER: &str = "drover_scheduler_leader";

/// Counts an enqueued fire, and its lateness if the clock fired it.
pub fn fired(fire: &schedule_fire::Model, enqueued_at: DateTime<Utc>) {
    let trigger = if fire.manual { "manual" } else { "schedule" };
    metrics::counter!(FIRES, "schedule" => fire.schedule_name.clone(), "trigger" => trigger)
        .increment(1);
    if !fire.manual {
        let late = (enqueued_at - fire.scheduled_at)
            .to_std()
            .unwrap_or_default()
            .as_secs_f64();
        metrics::histogram!(LATENESS, "schedule" => fire.schedule_name.clone()).record(late);
    }
}

/// Counts skipped fires; `reason` is the recorded reason or its kind.
pub fn skipped(schedule: &str, reason: &str, count: usize) {
    let kind = if reason.starts_with("overlap") {
        "overlap"
    } else if reason.starts_with("invalid") {
        "invalid"
    } else {
        "missed"
    };
    metrics::counter!(SKIPPED, "schedule" => schedule.to_owned(), "reason" => kind)
        .increment(count as u64);
}

/// Counts fires found missed.
pub fn missed(schedule: &str, count: usize) {
    if count > 0 {
        metrics::counter!(MISSED, "schedule" => schedule.to_owned()).increment(count as u64);
    }
}

/// Sets the leader flag.
pub fn leader(leading: bool) {
    metrics::gauge!(LEADER).set(if leading { 1.0 } else { 0.0 });
}

#[handler]
fn render(handle: Data<&PrometheusHandle>) -> impl IntoResponse {
    handle
        .render()
        .with_content_type("text/plain; version=0.0.4")
}

#[handler]
fn health() -> &'static str {
    "ok"
}

/// Serves `/metrics` and `/health` on `addr` in the background.
pub async fn serve(addr: SocketAddr, handle: PrometheusHandle) -> anyhow::Result<JoinHandle<()>> {
    let acceptor = TcpListener::bind(addr)
        .into_acceptor()
        .await
        .with_context(|| format!("listen for metrics on {addr} (DROVER_SCHEDULER_METRICS_ADDR)"))?;
    tracing::info!(addr = %addr, "metrics at http://{addr}/metrics");
    let app = Route::new()
        .at("/metrics", get(render))
        .at("/health", get(health))
        .data(handle);
    Ok(tokio::spawn(async move {
        if let Err(e) = Server::new_with_acceptor(acceptor).run(app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    }))
}
