//! Request ids, and HTTP metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures::StreamExt as _;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use poem_openapi::OperationId;
use tracing::Instrument;

/// The header that carries a request's id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the request being handled: the caller's `X-Request-Id` if it is sane,
/// otherwise a new ULID. It is echoed on the response, logged, and stored on jobs.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The W3C `traceparent` that jobs submitted in this request carry, if there is a trace.
#[derive(Debug, Clone)]
pub struct TraceParent(pub Option<String>);

/// Gives every request an id, a log span, and a line in the HTTP metrics.
pub struct Observe;

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        ObserveEndpoint { inner: ep }
    }
}

/// See [`Observe`].
pub struct ObserveEndpoint<E> {
    inner: E,
}

fn sane_id(v: &str) -> bool {
    !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())
}

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let id = req
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| sane_id(v))
            .map(str::to_owned)
            .unwrap_or_else(|| ulid::Ulid::new().to_string());
        req.extensions_mut().insert(RequestId(id.clone()));
        let method = method_label(req.method());
        let path = req.uri().path().to_owned();
        // `api_key` (the key's id) is filled in once the key is verified (`auth`).
        let span = tracing::info_span!(
            "request",
            request_id = %id,
            method = %method,
            path = %path,
            api_key = tracing::field::Empty
        );
        // The caller's trace, if it sent one, becomes this request's parent; jobs
        // submitted in this request carry the request span's own traceparent, so their
        // attempts nest under it (see `drover_jobs::trace`).
        let incoming = req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .filter(|v| drover_jobs::trace::is_traceparent(v))
            .map(str::to_owned);
        if let Some(tp) = &incoming {
            drover_jobs::trace::set_parent(&span, tp);
        }
        let traceparent = drover_jobs::trace::traceparent_of(&span).or(incoming);
        req.extensions_mut().insert(TraceParent(traceparent));
        let started = Instant::now();
        let res = self.inner.call(req).instrument(span.clone()).await;
        let mut resp = match res {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        let elapsed = started.elapsed();
        let status = resp.status().as_u16();
        // Labels are static strings where possible: no allocation per request, and a
        // bounded set of series whatever clients send.
        let route = resp
            .data::<OperationId>()
            .map_or_else(|| fallback_route(&path), |o| o.0);
        metrics::counter!("drover_http_requests_total", "route" => route, "method" => method, "status" => status_label(status))
            .increment(1);
        metrics::histogram!("drover_http_request_seconds", "route" => route, "method" => method)
            .record(elapsed.as_secs_f64());
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert(REQUEST_ID_HEADER, v);
        }
        let _enter = span.enter();
        if status >= 500 {
            tracing::warn!(
                status,
                elapsed_ms = elapsed.as_millis() as u64,
                "request failed"
            );
        } else {
            tracing::debug!(
                status,
                elapsed_ms = elapsed.as_millis() as u64,
                "request served"
            );
        }
        Ok(resp)
    }
}

/// A bounded label for requests that matched no operation (docs, metrics, 404s).
fn fallback_route(path: &str) -> &'static str {
    match path {
        "/health" => "/health",
        "/ready" => "/ready",
        "/metrics" => "/metrics",
        "/openapi.json" => "/openapi.json",
        p if p.starts_with("/docs") => "/docs",
        _ => "unmatched",
    }
}

/// The method as a label: the standard ones, or `other` (clients may send any token).
fn method_label(m: &poem::http::Method) -> &'static str {
    use poem::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The status as a label, without allocating for the statuses the API answers.
fn status_label(status: u16) -> metrics::SharedString {
    let s = match status {
        200 => "200",
        201 => "201",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        415 => "415",
        429 => "429",
        500 => "500",
        503 => "503",
        other => return metrics::SharedString::from(other.to_string()),
    };
    metrics::SharedString::const_str(s)
}

/// Refuses request bodies over the limit with 413, counting the bytes actually read.
///
/// A declared `Content-Length` over the limit is refused at once. Every other body
/// (a length within the limit, chunked, or HTTP/2, where a body may carry neither
/// header) is wrapped in a counter: the read that takes it past the limit fails, the
/// handler stops reading, and the answer is 413 whatever the handler made of the
/// failed read. So the most a request makes the process hold is the limit (plus one
/// chunk), and nothing past the limit is read.
pub struct BodyLimit(pub usize);

/// The upload route, which enforces its own limit on the bytes it reads.
pub const DATASET_UPLOAD_PATH: &str = "/api/v1/datasets";

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            limit: self.0,
        }
    }
}

/// See [`BodyLimit`].
pub struct BodyLimitEndpoint<E> {
    inner: E,
    limit: usize,
}

/// The error a read past the limit gets; the middleware turns the answer into a 413.
#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than the limit of {0} bytes")]
struct OverLimit(usize);

fn too_large() -> poem::Error {
    poem::Error::from_status(StatusCode::PAYLOAD_TOO_LARGE)
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        // Dataset uploads stream to disk under their own limit (DROVER_DATASET_MAX_BYTES).
        if req.method() == poem::http::Method::POST && req.uri().path() == DATASET_UPLOAD_PATH {
            return self.inner.call(req).await;
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.limit as u64) {
            return Err(too_large());
        }
        let body = req.take_body();
        if body.is_empty() {
            req.set_body(body);
            return self.inner.call(req).await;
        }
        let over = Arc::new(AtomicBool::new(false));
        let flag = over.clone();
        let limit = self.limit;
        let mut read = 0usize;
        let counted = body.into_bytes_stream().map(move |chunk| {
            let chunk = chunk?;
            read = read.saturating_add(chunk.len());
            if read > limit {
                flag.store(true, Ordering::Relaxed);
                return Err(std::io::Error::other(OverLimit(limit)));
            }
            Ok(chunk)
        });
        req.set_body(poem::Body::from_bytes_stream(counted));
        let res = self.inner.call(req).await;
        if over.load(Ordering::Relaxed) {
            return Err(too_large());
        }
        res
    }
}

/// The request headers whose value the API acts on as text. (`traceparent` and
/// `x-request-id` are not among them: one that is not valid is ignored and replaced,
/// as W3C Trace Context asks.)
const TEXT_HEADERS: [&str; 3] = ["Last-Event-ID", "Idempotency-Key", "Authorization"];

/// Refuses a request whose header the API reads is not visible ASCII, with a 400
/// naming the header.
///
/// poem-openapi reads a header parameter that is not valid text as absent, so a
/// `Last-Event-ID` of stray bytes would resume from the start instead of being
/// refused, and an `Idempotency-Key` of them would submit twice. Every value the API
/// hands out for these headers is ASCII.
pub struct TextHeaders;

impl<E: Endpoint> Middleware<E> for TextHeaders {
    type Output = TextHeadersEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        TextHeadersEndpoint { inner: ep }
    }
}

/// See [`TextHeaders`].
pub struct TextHeadersEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for TextHeadersEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        for name in TEXT_HEADERS {
            for v in req.headers().get_all(name) {
                if v.to_str().is_err() {
                    return Ok(crate::error::ApiError::validation(
                        name,
                        "must be visible ASCII text (send back the value as the API gave it)",
                    )
                    .into_response());
                }
            }
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

/// Adds the `Allow` header to a 405 (RFC 9110): the methods the path does take.
///
/// The table comes from the OpenAPI document (path templates such as
/// `/api/v1/queues/{queue}/pause`) plus the plain routes; the most literal template that
/// matches the path wins, as in the router.
pub struct AllowOn405(pub std::sync::Arc<Vec<(String, String)>>);

impl<E: Endpoint> Middleware<E> for AllowOn405 {
    type Output = AllowOn405Endpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        AllowOn405Endpoint {
            inner: ep,
            table: self.0.clone(),
        }
    }
}

/// See [`AllowOn405`].
pub struct AllowOn405Endpoint<E> {
    inner: E,
    table: std::sync::Arc<Vec<(String, String)>>,
}

/// The allowed methods of the best template for `path`.
fn allowed<'a>(table: &'a [(String, String)], path: &str) -> Option<&'a str> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    table
        .iter()
        .filter_map(|(template, methods)| {
            let t: Vec<&str> = template.split('/').collect();
            if t.len() != segs.len() {
                return None;
            }
            let mut literal = 0;
            for (a, b) in t.iter().zip(&segs) {
                if a.starts_with('{') {
                    continue;
                }
                if a != b {
                    return None;
                }
                literal += 1;
            }
            Some((literal, methods.as_str()))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, m)| m)
}

impl<E: Endpoint> Endpoint for AllowOn405Endpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let path = req.uri().path().to_owned();
        let mut resp = self.inner.call(req).await?.into_response();
        if resp.status() == StatusCode::METHOD_NOT_ALLOWED
            && let Some(methods) = allowed(&self.table, &path)
            && let Ok(v) = HeaderValue::from_str(methods)
        {
            resp.headers_mut().insert(header::ALLOW, v);
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn the_most_literal_template_wins() {
        let t = vec![
            ("/api/v1/queues/metrics".to_owned(), "GET".to_owned()),
            ("/api/v1/queues/{queue}/pause".to_owned(), "POST".to_owned()),
            ("/api/v1/queues/{queue}".to_owned(), "DELETE".to_owned()),
        ];
        assert_eq!(allowed(&t, "/api/v1/queues/metrics"), Some("GET"));
        assert_eq!(allowed(&t, "/api/v1/queues/export/pause"), Some("POST"));
        assert_eq!(allowed(&t, "/api/v1/queues/export/pause/"), Some("POST"));
        assert_eq!(allowed(&t, "/api/v1/other"), None);
    }
}
