//! An OTLP/HTTP receiver for tests: it accepts `POST /v1/traces` with JSON bodies (the
//! protocol `http/json`) and keeps every span it was sent, so a test can check which
//! spans a real process exported and how they nest.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One exported span.
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// String forms of the attributes.
    pub attributes: BTreeMap<String, String>,
}

/// A running receiver; it stops with the test's runtime.
pub struct OtlpReceiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl OtlpReceiver {
    /// Listens on a free loopback port.
    ///
    /// # Panics
    /// If no port can be bound.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let spans = Arc::new(Mutex::new(Vec::new()));
        let store = spans.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let (r, mut w) = conn.into_split();
                    let mut r = BufReader::new(r);
                    // One request after another on a kept-alive connection.
                    while let Some(body) = read_request(&mut r).await {
                        if let Ok(v) = serde_json::from_slice::<Value>(&body)
                            && let Ok(mut s) = store.lock()
                        {
                            s.extend(spans_of(&v));
                        }
                        let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                        if w.write_all(reply.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { addr, spans }
    }

    /// The endpoint to give a process as `OTEL_EXPORTER_OTLP_ENDPOINT`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    ///
    /// # Panics
    /// If a receiving task panicked.
    #[must_use]
    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().expect("spans lock").clone()
    }
}

/// Reads one HTTP/1.1 request and returns its body; `None` at the end of the stream.
async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Option<Vec<u8>> {
    let mut len = 0usize;
    let mut first = true;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            if first {
                continue;
            }
            break;
        }
        first = false;
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).await.ok()?;
    Some(body)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => o.values().next().map(text).unwrap_or_default(),
        other => other.to_string(),
    }
}

/// The spans of one `ExportTraceServiceRequest` in its JSON form.
fn spans_of(v: &Value) -> Vec<Span> {
    let mut out = Vec::new();
    for rs in v["resourceSpans"].as_array().into_iter().flatten() {
        let service = rs["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["key"] == "service.name")
            .map(|a| text(&a["value"]))
            .unwrap_or_default();
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            for s in ss["spans"].as_array().into_iter().flatten() {
                let attributes = s["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| (text(&a["key"]), text(&a["value"])))
                    .collect();
                out.push(Span {
                    service: service.clone(),
                    name: text(&s["name"]),
                    trace_id: text(&s["traceId"]).to_ascii_lowercase(),
                    span_id: text(&s["spanId"]).to_ascii_lowercase(),
                    parent_span_id: s
                        .get("parentSpanId")
                        .map(text)
                        .unwrap_or_default()
                        .to_ascii_lowercase(),
                    attributes,
                });
            }
        }
    }
    out
}
