//! Distributed tracing: spans exported over OTLP/HTTP, and the W3C `traceparent` that
//! carries a trace from a submit request to every attempt of its job.
//!
//! The API sets each request span's parent from the caller's `traceparent` header and
//! stores the request span's own `traceparent` on the job it submits; the worker makes
//! that the parent of each attempt's span. A job therefore appears in its caller's
//! trace, under the request that submitted it, however many attempts and workers it
//! takes. Without an OTLP endpoint nothing is exported, and the job keeps the caller's
//! `traceparent` as it came, so logs still show which trace a job belongs to.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;

pub use drover_queue::trace::{is_traceparent, set_parent, traceparent_of};

/// Why the OTLP exporter could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("set up the OTLP span exporter for {endpoint}: {message}")]
pub struct ExporterError {
    endpoint: String,
    message: String,
}

/// The OTLP exporter of this process; dropping it flushes the spans not yet sent.
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("flush the remaining spans: {e}");
        }
    }
}

impl Exporter {
    /// An exporter that sends this process's spans, as `service`, to the OTLP/HTTP
    /// collector at `endpoint` (`http://host:4318`; `/v1/traces` is appended).
    pub fn new(endpoint: &str, service: &str) -> Result<Self, ExporterError> {
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        // The exporter's blocking HTTP client must not be built (or dropped) on an async
        // runtime's thread, and the binaries call this from `main` under tokio.
        let built = std::thread::scope(|s| {
            s.spawn(|| {
                opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpJson)
                    .with_endpoint(url.clone())
                    .build()
            })
            .join()
        });
        let exporter = match built {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => {
                return Err(ExporterError {
                    endpoint: url,
                    message: e.to_string(),
                });
            }
            Err(_) => {
                return Err(ExporterError {
                    endpoint: url,
                    message: "the exporter's set-up thread panicked".into(),
                });
            }
        };
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(service.to_owned())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        Ok(Self { provider })
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans for this exporter.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + Send + Sync + 'static
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("drover"))
    }
}
