//! The HTTP body of an event stream.
//!
//! It is poem-openapi's `payload::EventStream` (same content type, same OpenAPI
//! description, typed events, keep-alive comments), written for fan-out. Measured
//! with 10 000 clients, `EventStream` cost each client a 4 KiB buffer (it goes
//! through `Body::from_async_read`, whose reader keeps one per response) and each
//! delivery two copies and a string formatting of the event. Here an event's
//! `event:`/`data:` lines are rendered once when the relay reads it, shared by
//! every client, and each delivery only prepends the client's `id:` line.

use std::task::Poll;
use std::time::Duration;

use bytes::{BufMut as _, Bytes, BytesMut};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use poem::{Body, IntoResponse, Response};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types;

use super::stream::SseItem;

/// The keep-alive: an SSE comment line.
const KEEP_ALIVE: &[u8] = b":\n\n";

/// Renders the `event:` and `data:` lines of one message, and the blank line that
/// ends it. `data` must hold no line break (compact JSON never does).
#[must_use]
pub fn frame(kind: &str, data: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(kind.len() + data.len() + 16);
    b.put_slice(b"event: ");
    b.put_slice(kind.as_bytes());
    b.put_slice(b"\ndata: ");
    b.put_slice(data.as_bytes());
    b.put_slice(b"\n\n");
    b.freeze()
}

/// A message with its `id:` line, ready to write.
#[must_use]
pub fn with_id(id: Option<&str>, frame: &Bytes) -> Bytes {
    match id {
        None => frame.clone(),
        Some(id) => {
            let mut b = BytesMut::with_capacity(id.len() + 5 + frame.len());
            b.put_slice(b"id: ");
            b.put_slice(id.as_bytes());
            b.put_u8(b'\n');
            b.put_slice(frame);
            b.freeze()
        }
    }
}

/// An event stream response body, with a keep-alive comment every `keep_alive`.
pub struct SseBody {
    stream: BoxStream<'static, SseItem>,
    keep_alive: Duration,
}

impl SseBody {
    #[must_use]
    pub fn new(stream: BoxStream<'static, SseItem>, keep_alive: Duration) -> Self {
        Self { stream, keep_alive }
    }
}

impl Payload for SseBody {
    const CONTENT_TYPE: &'static str = "text/event-stream";

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            items: Some(Box::new(<SseItem as types::Type>::schema_ref())),
            ..MetaSchema::new_with_format("array", "event-stream")
        }))
    }

    fn register(registry: &mut Registry) {
        <SseItem as types::Type>::register(registry);
    }
}

impl IntoResponse for SseBody {
    fn into_response(self) -> Response {
        let mut events = self.stream;
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + self.keep_alive,
            self.keep_alive,
        );
        // A stream that was not polled for a while (a slow reader) owes one comment,
        // not a burst of them.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let body = futures::stream::poll_fn(move |cx| {
            if let Poll::Ready(item) = events.poll_next_unpin(cx) {
                return Poll::Ready(item.map(|i| Ok::<Bytes, std::io::Error>(i.to_bytes())));
            }
            tick.poll_tick(cx)
                .map(|_| Some(Ok(Bytes::from_static(KEEP_ALIVE))))
        });
        Response::builder()
            .content_type(Self::CONTENT_TYPE)
            .header("Cache-Control", "no-cache")
            // Tells nginx not to buffer the stream.
            .header("X-Accel-Buffering", "no")
            .body(Body::from_bytes_stream(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_render_as_sse() {
        let f = frame("job:progress", r#"{"a":1}"#);
        assert_eq!(&f[..], b"event: job:progress\ndata: {\"a\":1}\n\n");
        assert_eq!(
            &with_id(Some("export:1-0"), &f)[..],
            b"id: export:1-0\nevent: job:progress\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(with_id(None, &f), f);
    }
}
