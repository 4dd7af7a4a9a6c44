//! Logs and metrics, set up the same way in every process.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::CommonConfig;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Readable, coloured lines, for people at a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global log subscriber. Calling it again does nothing.
pub fn init_tracing(format: LogFormat, filter: &str) {
    install(format, filter, None);
}

/// What a process keeps while it runs: its OTLP exporter, if any, which flushes the
/// spans not yet sent when dropped.
pub struct Telemetry {
    _exporter: Option<crate::trace::Exporter>,
}

/// Installs logs, and span export over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set,
/// for `process` (the OpenTelemetry service name unless `OTEL_SERVICE_NAME` says
/// otherwise). Keep the returned value alive until the process ends.
pub fn init(common: &CommonConfig, process: &str) -> Telemetry {
    let exporter = common.otlp_endpoint.as_deref().and_then(|endpoint| {
        let service = common.otel_service_name.as_deref().unwrap_or(process);
        match crate::trace::Exporter::new(endpoint, service) {
            Ok(e) => Some(e),
            Err(e) => {
                // Logs are not set up yet, and a missing collector must not stop the
                // process: say so and run without span export.
                eprintln!("{process}: {e}; spans will not be exported");
                None
            }
        }
    });
    install(common.log_format, &common.log_filter, exporter.as_ref());
    Telemetry {
        _exporter: exporter,
    }
}

fn install(format: LogFormat, filter: &str, exporter: Option<&crate::trace::Exporter>) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::with_capacity(2);
    layers.push(match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_target(true)
            .with_filter(filter)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_target(true)
            .with_filter(filter)
            .boxed(),
    });
    // Spans are exported at info whatever `RUST_LOG` keeps in the logs: quieter logs
    // must not cut a job out of its trace.
    if let Some(e) = exporter {
        layers.push(
            e.layer::<Registry>()
                .with_filter(EnvFilter::new("info"))
                .boxed(),
        );
    }
    let _ = tracing_subscriber::registry().with(layers).try_init();
}

/// Seconds-scale buckets for job run and wait times, from 1 ms to 1 h.
const JOB_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0, 3600.0,
];

/// Buckets for HTTP request latencies, from 0.5 ms to 10 s.
const HTTP_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Installs the process's Prometheus recorder (once) and returns its handle, which
/// renders the `/metrics` text.
///
/// # Panics
/// If another recorder was installed by someone else: a programming error at start-up.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Prefix("drover_http_".into()), HTTP_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), JOB_BUCKETS)
                })
                .and_then(PrometheusBuilder::install_recorder)
                .expect("install the Prometheus recorder")
        })
        .clone()
}
