//! The W3C `traceparent` that carries a trace from the request that submitted a job to
//! every attempt of it.
//!
//! A job stores the `traceparent` it was submitted under; each attempt's `job` span
//! takes it as its parent, so with span export on (see `drover_jobs::trace`) a job
//! appears in its caller's trace however many attempts and workers it takes. Without
//! export these functions do nothing but validate.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct One<'a>(&'a str);

impl Extractor for One<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }
    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

struct Collect(HashMap<String, String>);

impl Injector for Collect {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

/// Whether `v` is a well-formed W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`,
/// with non-zero ids). A malformed one is ignored, never stored.
#[must_use]
pub fn is_traceparent(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() == 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && parts[1].bytes().any(|b| b != b'0')
        && hex(parts[2], 16)
        && parts[2].bytes().any(|b| b != b'0')
        && hex(parts[3], 2)
}

/// Makes the trace of `traceparent` the parent of `span`. Does nothing for a malformed
/// value, or when no OTLP exporter is installed.
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    if !is_traceparent(traceparent) {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&One(traceparent));
    let _ = span.set_parent(cx);
}

/// The `traceparent` naming `span` itself, when spans are exported (so a child made
/// from it nests under `span`); `None` without an exporter.
#[must_use]
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut out = Collect(HashMap::new());
    TraceContextPropagator::new().inject_context(&cx, &mut out);
    out.0.remove("traceparent")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_traceparents_pass() {
        assert!(is_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(!is_traceparent(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_span_without_an_exporter_has_no_traceparent() {
        assert_eq!(traceparent_of(&tracing::info_span!("x")), None);
    }
}
