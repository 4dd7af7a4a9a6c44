//! The HTTP server: poem's endpoint served through hyper's connection builders.
//!
//! poem's `Server` builds every connection with hyper-util's `auto` builder and
//! hyper's defaults, and exposes none of the HTTP/1 settings. With thousands of event
//! streams open, each connection's state is most of the API's memory, so the API
//! serves its connections itself, with the behaviour poem's server gives: HTTP/1.1
//! and HTTP/2 (prior knowledge) on one port, upgrades, and a graceful shutdown that
//! stops accepting, lets every connection finish its requests, and drops whatever is
//! still open after the drain timeout.
//!
//! What it does differently, each measured (docs/BENCHMARKS.md):
//! - It tells HTTP/2 from HTTP/1 itself, by the connection's first 24 bytes, and
//!   then runs that protocol's connection in a task of its own. hyper-util's `auto`
//!   connection is an enum holding either protocol's state, so every HTTP/1
//!   connection's task was as large as an HTTP/2 one.
//! - HTTP/1 buffers are capped at [`HTTP1_MAX_BUF`] instead of about 400 KiB.
//! - An HTTP/1 connection closes with a lingering read ([`Lingering`]), as nginx's
//!   `lingering_close` does, so that a client still sending a body the server refused
//!   (413 on its `Content-Length`) reads the refusal instead of a reset.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use poem::endpoint::BoxEndpoint;
use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, EndpointExt as _};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

/// The largest read and write buffer hyper may grow to per HTTP/1 connection.
///
/// hyper's default lets them grow to about 400 KiB; this is hyper's minimum (also
/// its initial size), and enough for the API: request heads are small, bodies are
/// streamed (the body limit counts them as they arrive), and an event stream's
/// writes are at most this big (see `relay::body`).
pub const HTTP1_MAX_BUF: usize = 8 * 1024;

/// What every HTTP/2 connection starts with (RFC 9113, 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// poem's response body, as hyper is given it.
type BoxBody = http_body_util::combinators::BoxBody<bytes::Bytes, std::io::Error>;

/// What each connection's task shares: the endpoint and the protocols' settings.
struct Shared {
    ep: BoxEndpoint<'static>,
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
    /// Cancelled at shutdown: each connection then finishes its requests and closes.
    stopping: CancellationToken,
    /// Cancelled when the drain times out: the connections still open are dropped.
    abandon: CancellationToken,
}

/// Serves `ep` on the connections of `acceptor` until `shutdown` completes; then
/// stops accepting, lets open requests finish for at most `drain`, and returns.
///
/// # Errors
/// None so far: a failed accept is logged and the loop goes on, as in poem.
pub async fn run<A, E>(
    mut acceptor: A,
    ep: E,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> std::io::Result<()>
where
    A: Acceptor + 'static,
    E: Endpoint + 'static,
{
    let mut h1 = http1::Builder::new();
    h1.max_buf_size(HTTP1_MAX_BUF);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    // poem's settings: at most 20 streams reset before being accepted (the "rapid
    // reset" guard), 16 KiB of request headers.
    h2.max_pending_accept_reset_streams(Some(20))
        .max_header_list_size(16 * 1024);
    let shared = Arc::new(Shared {
        ep: ep.map_to_response().boxed(),
        h1,
        h2,
        stopping: CancellationToken::new(),
        abandon: CancellationToken::new(),
    });
    // Each connection's task holds a sender; once the last is dropped, all are done.
    let (open, mut all_closed) = tokio::sync::mpsc::channel::<Infallible>(1);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = acceptor.accept() => match accepted {
                Ok((io, local, remote, scheme)) => {
                    let peer = Peer { local, remote, scheme };
                    tokio::spawn(connection(Arc::clone(&shared), io, peer, open.clone()));
                }
                Err(e) => tracing::debug!(error = %e, "accept failed"),
            },
        }
    }
    drop(acceptor);
    shared.stopping.cancel();
    drop(open);
    if tokio::time::timeout(drain, all_closed.recv())
        .await
        .is_err()
    {
        tracing::info!(
            drain_seconds = drain.as_secs_f32(),
            "connections still open after the drain timeout: dropping them"
        );
        shared.abandon.cancel();
        // Each drops at its next poll, which the cancellation itself causes.
        let _ = all_closed.recv().await;
    }
    Ok(())
}

/// Where a connection came from and to, as poem's requests carry it.
#[derive(Clone)]
struct Peer {
    local: LocalAddr,
    remote: RemoteAddr,
    scheme: Scheme,
}

/// Reads enough of a connection to tell its protocol, then serves it in a task of
/// that protocol's own.
async fn connection<I>(
    shared: Arc<Shared>,
    mut io: I,
    peer: Peer,
    open: tokio::sync::mpsc::Sender<Infallible>,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mut head = [0u8; H2_PREFACE.len()];
    let mut read = 0;
    // Until the bytes differ from the preface, or all of it came (or the client
    // closed, or shutdown began: hyper's HTTP/1 side deals with what was read).
    while read < head.len() && head[..read] == H2_PREFACE[..read] {
        let n = tokio::select! {
            r = io.read(&mut head[read..]) => r.unwrap_or(0),
            () = shared.stopping.cancelled() => 0,
        };
        if n == 0 {
            break;
        }
        read += n;
    }
    let io = Replay {
        head,
        at: 0,
        end: read,
        io,
    };
    if read == head.len() && &head == H2_PREFACE {
        let service = service(Arc::clone(&shared), peer);
        let conn = shared.h2.serve_connection(TokioIo::new(io), service);
        tokio::spawn(drive(shared, conn, |c| c.graceful_shutdown(), open));
    } else {
        let service = service(Arc::clone(&shared), peer);
        let io = TokioIo::new(Lingering { io: Some(io) });
        let conn = shared.h1.serve_connection(io, service).with_upgrades();
        tokio::spawn(drive(shared, conn, |c| c.graceful_shutdown(), open));
    }
}

/// Runs a connection until it ends; at shutdown asks it to finish gracefully
/// (`graceful`), and drops it if the drain times out.
async fn drive<C, F>(
    shared: Arc<Shared>,
    conn: C,
    graceful: F,
    open: tokio::sync::mpsc::Sender<Infallible>,
) where
    C: Future<Output = hyper::Result<()>>,
    F: FnOnce(Pin<&mut C>),
{
    let served = async {
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => r,
            () = shared.stopping.cancelled() => {
                graceful(conn.as_mut());
                conn.await
            }
        }
    };
    tokio::select! {
        r = served => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        () = shared.abandon.cancelled() => {}
    }
    drop(open);
}

/// The hyper service of one connection: poem's endpoint.
fn service(
    shared: Arc<Shared>,
    peer: Peer,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = hyper::Response<BoxBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<hyper::Response<BoxBody>, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    hyper::service::service_fn(move |req| {
        let shared = Arc::clone(&shared);
        let req: poem::Request = (
            req,
            peer.local.clone(),
            peer.remote.clone(),
            peer.scheme.clone(),
        )
            .into();
        async move {
            let resp = shared.ep.get_response(req).await;
            Ok::<_, Infallible>(hyper::Response::<BoxBody>::from(resp))
        }
    })
}

/// A connection whose first bytes, read to tell its protocol, are read again.
struct Replay<I> {
    head: [u8; H2_PREFACE.len()],
    at: usize,
    end: usize,
    io: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Replay<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.end {
            let n = (self.end - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.head[at..at + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Replay<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// How long a closed HTTP/1 connection goes on reading (and discarding) what its
/// client still sends, at most.
const LINGER_FOR: Duration = Duration::from_secs(5);
/// How long the lingering read waits for the client's next bytes before it gives up.
const LINGER_IDLE: Duration = Duration::from_secs(1);

/// An HTTP/1 connection that, once hyper is done with it, reads for a while before
/// it is dropped.
///
/// When the API refuses a body without reading it (a `Content-Length` over the
/// limit), the client is usually still sending it. Closing a socket with unread bytes
/// makes the kernel answer with a reset, and a client that gets the reset while it is
/// writing reports a broken pipe instead of the 413 waiting in its receive buffer.
/// Reading and discarding what still comes, after hyper has sent its answer and shut
/// its side down, lets the client finish writing and read the answer. It costs a small
/// buffer and at most [`LINGER_FOR`] per connection, and nothing when the client has
/// closed already (the first read sees the end).
struct Lingering<I: AsyncRead + Send + Unpin + 'static> {
    /// `None` only once dropped.
    io: Option<I>,
}

impl<I: AsyncRead + Send + Unpin + 'static> Lingering<I> {
    fn io(&mut self) -> std::io::Result<&mut I> {
        self.io
            .as_mut()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotConnected))
    }
}

impl<I: AsyncRead + Send + Unpin + 'static> Drop for Lingering<I> {
    fn drop(&mut self) {
        let (Some(mut io), Ok(rt)) = (self.io.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        rt.spawn(async move {
            let mut sink = [0u8; 4096];
            let _ = tokio::time::timeout(LINGER_FOR, async {
                while let Ok(Ok(n)) = tokio::time::timeout(LINGER_IDLE, io.read(&mut sink)).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        });
    }
}

impl<I: AsyncRead + Send + Unpin + 'static> AsyncRead for Lingering<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(self.io()?).poll_read(cx, buf)
    }
}

impl<I: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncWrite for Lingering<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(self.io()?).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(self.io()?).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(self.io()?).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(self.io()?).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_bytes_read_to_tell_the_protocol_are_read_again() {
        let (mut client, server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET / HTTP/1.1\r\n")
            .await
            .unwrap();
        drop(client);
        let mut head = [0u8; 24];
        head[..3].copy_from_slice(b"GET");
        let mut r = Replay {
            head,
            at: 0,
            end: 3,
            io: server,
        };
        // The server read "GET" already; the rest follows from the socket.
        let mut skip = [0u8; 3];
        r.io.read_exact(&mut skip).await.unwrap();
        let mut all = Vec::new();
        r.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"GET / HTTP/1.1\r\n");
    }
}
