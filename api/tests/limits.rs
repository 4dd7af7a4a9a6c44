#![allow(clippy::unwrap_used)] // Tests fail by panicking.
//! What a hostile client cannot do: send a body past the limit whatever the framing,
//! or spray bad keys at the database.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use serde_json::json;

/// The body limit these tests run with.
const LIMIT: usize = 64 * 1024;
/// What the client offers to send: far past the limit.
const OFFERED: usize = 64 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// A body of `OFFERED` bytes of JSON whitespace, made as it is sent, with no length;
/// `sent` counts the bytes the HTTP client took from it.
fn endless(sent: Arc<AtomicUsize>) -> reqwest::Body {
    let chunks = futures::stream::iter(0..OFFERED / CHUNK).map(move |_| {
        sent.fetch_add(CHUNK, Ordering::Relaxed);
        Ok::<_, std::io::Error>(vec![b' '; CHUNK])
    });
    reqwest::Body::wrap_stream(chunks)
}

use futures::StreamExt as _;

async fn limited_api() -> TestApi {
    TestApi::builder()
        .env("DROVER_API_BODY_LIMIT", &LIMIT.to_string())
        .start()
        .await
}

#[tokio::test]
async fn an_http2_body_without_a_length_is_refused_at_the_limit() {
    let api = limited_api().await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let r = h2
        .post(api.url("/api/v1/queues/cleanup/jobs"))
        .bearer_auth(SUBMITTER)
        .header("content-type", "application/json")
        .body(endless(sent.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    Reply::of(r).await.assert_error(413, "payload_too_large");
    // The server stopped reading at the limit: the client could only get a flow-control
    // window or two ahead of it, nowhere near the whole body.
    let sent = sent.load(Ordering::Relaxed);
    assert!(
        sent < 8 * 1024 * 1024,
        "{sent} bytes sent for a limit of {LIMIT}"
    );

    // Within the limit, a body with no length still goes through.
    let r = h2
        .post(api.url("/api/v1/queues/cleanup/jobs"))
        .bearer_auth(SUBMITTER)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter([Ok::<
            _,
            std::io::Error,
        >(
            json!({ "payload": {} }).to_string().into_bytes(),
        )])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let r = Reply::of(r).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        api.total_jobs().await,
        1,
        "the refused body enqueued nothing"
    );
}

#[tokio::test]
async fn a_chunked_http1_body_is_refused_at_the_limit() {
    let api = limited_api().await;
    let sent = Arc::new(AtomicUsize::new(0));
    let r = api
        .req(
            reqwest::Method::POST,
            "/api/v1/queues/cleanup/jobs",
            SUBMITTER,
        )
        .header("content-type", "application/json")
        .body(endless(sent.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    Reply::of(r).await.assert_error(413, "payload_too_large");
    let sent = sent.load(Ordering::Relaxed);
    assert!(
        sent < 8 * 1024 * 1024,
        "{sent} bytes sent for a limit of {LIMIT}"
    );
    assert_eq!(api.total_jobs().await, 0);
}

/// A client that sends all of a body the server refuses on its `Content-Length`
/// before it reads: the refusal is still what it reads, not a reset. The server closes
/// with a lingering read; without it, the bytes it never read make its kernel answer
/// with a reset, the write fails with a broken pipe, and the 413 is lost.
#[tokio::test]
async fn a_client_still_sending_a_refused_body_reads_the_refusal() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let api = limited_api().await;
    let addr = api.url("").trim_start_matches("http://").to_owned();
    // Far more than the socket buffers of both ends hold, so that the client can only
    // finish writing if the server goes on reading.
    let body = vec![b' '; 16 * 1024 * 1024];
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/queues/cleanup/jobs HTTP/1.1\r\nhost: {addr}\r\n\
         authorization: Bearer {SUBMITTER}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    let sent = tokio::time::timeout(T, async {
        tcp.write_all(head.as_bytes()).await?;
        tcp.write_all(&body).await
    })
    .await
    .expect("the server stopped reading: the client's writes blocked");
    sent.expect("the client's write failed: the server reset the connection");
    let mut answer = Vec::new();
    tokio::time::timeout(T, tcp.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    assert_eq!(api.total_jobs().await, 0);
}

/// A header the API acts on that is not text is refused, naming it, not read as
/// absent: a `Last-Event-ID` of stray bytes would replay from the start, and an
/// `Idempotency-Key` of them would submit twice.
#[tokio::test]
async fn headers_the_api_acts_on_must_be_text() {
    let api = limited_api().await;
    let bytes = reqwest::header::HeaderValue::from_bytes(b"\xc2\x84").unwrap();
    let r = api
        .req(reqwest::Method::GET, "/api/v1/sse/events", ADMIN)
        .header("Last-Event-ID", bytes.clone())
        .send()
        .await
        .unwrap();
    let r = Reply::of(r).await;
    r.assert_error(400, "validation_failed");
    assert_eq!(r.field(), "Last-Event-ID");
    for _ in 0..2 {
        let r = api
            .req(
                reqwest::Method::POST,
                "/api/v1/queues/cleanup/jobs",
                SUBMITTER,
            )
            .header("Idempotency-Key", bytes.clone())
            .json(&json!({ "payload": {} }))
            .send()
            .await
            .unwrap();
        let r = Reply::of(r).await;
        r.assert_error(400, "validation_failed");
        assert_eq!(r.field(), "Idempotency-Key");
    }
    assert_eq!(api.total_jobs().await, 0);
}

#[tokio::test]
async fn failed_authentications_are_limited_per_address_and_valid_keys_still_work() {
    let api = TestApi::builder()
        .env("DROVER_API_AUTH_FAILURES", "5")
        .start()
        .await;
    // Seen once, so they are in the cache of valid keys.
    for key in [SUBMITTER, ADMIN] {
        assert_eq!(
            api.get("/api/v1/queues/cleanup/jobs", key).await.status,
            200
        );
    }
    for i in 0..5 {
        api.get("/api/v1/queues/cleanup/jobs", &format!("bad-key-{i:020}"))
            .await
            .assert_error(401, "unauthorized");
    }
    let r = api
        .get("/api/v1/queues/cleanup/jobs", "bad-key-99999999999999")
        .await;
    r.assert_error(429, "rate_limited");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("failed authentications"),
        "{}",
        r.body
    );
    // A bad key seen before is limited too, without a lookup.
    api.get(
        "/api/v1/queues/cleanup/jobs",
        "bad-key-00000000000000000000",
    )
    .await
    .assert_error(429, "rate_limited");
    // The valid keys, verified before, are not locked out by the flood from their
    // address (a key this process has not verified yet would wait for the budget).
    assert_eq!(
        api.get("/api/v1/queues/cleanup/jobs", SUBMITTER)
            .await
            .status,
        200
    );
    assert_eq!(
        api.get("/api/v1/queues/cleanup/jobs", ADMIN).await.status,
        200
    );
}
