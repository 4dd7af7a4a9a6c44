//! A TCP proxy between a client under test and its server, for partition tests.
//!
//! [`Proxy`] forwards every connection it accepts to one upstream address, and can be
//! told to misbehave the way networks do:
//!
//! - [`Proxy::pause`] stops forwarding in both directions (bytes wait in the proxy,
//!   connections stay open), as a partition that drops nothing does; [`Proxy::resume`]
//!   lets them through again;
//! - [`Proxy::cut_all`] closes every open connection at once;
//! - [`Proxy::lose_reply_to`] lets the next request that contains some bytes reach the
//!   server, then closes that connection before its reply reaches the client: the
//!   server did the work and the client never hears of it;
//!   [`Proxy::lose_reply_then_pause`] also pauses the proxy at that moment, as a client
//!   that never comes back would be;
//! - [`Proxy::throttle`] limits each connection's replies to some bytes per second, so
//!   a large reply occupies its connection for a while.
//!
//! It runs on the test's tokio runtime and stops when dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// See the [module docs](self).
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: AbortHandle,
}

struct Shared {
    upstream: SocketAddr,
    paused: watch::Sender<bool>,
    /// Bytes per second per connection, server to client; 0 for no limit.
    throttle: AtomicU64,
    /// Armed by `lose_reply_to`: the bytes that mark the request whose reply is lost.
    lose: Mutex<Option<Vec<u8>>>,
    /// Pause at the lost reply, before the client can send anything again.
    pause_at_loss: AtomicBool,
    lost_replies: AtomicUsize,
    conns: Mutex<Vec<AbortHandle>>,
    accepted: AtomicUsize,
}

impl Proxy {
    /// A proxy on a free loopback port to `upstream` (`host:port`).
    ///
    /// # Panics
    /// If it cannot bind a port or `upstream` is not an address.
    pub async fn start(upstream: &str) -> Self {
        let upstream: SocketAddr = upstream
            .parse()
            .unwrap_or_else(|e| panic!("upstream {upstream:?} is not host:port: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            upstream,
            paused: watch::channel(false).0,
            throttle: AtomicU64::new(0),
            lose: Mutex::new(None),
            pause_at_loss: AtomicBool::new(false),
            lost_replies: AtomicUsize::new(0),
            conns: Mutex::new(Vec::new()),
            accepted: AtomicUsize::new(0),
        });
        let s = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                s.accepted.fetch_add(1, Ordering::SeqCst);
                let conn = tokio::spawn(serve(s.clone(), client));
                if let Ok(mut c) = s.conns.lock() {
                    c.retain(|h| !h.is_finished());
                    c.push(conn.abort_handle());
                }
            }
        })
        .abort_handle();
        Self {
            addr,
            shared,
            accept,
        }
    }

    /// A proxy to a Redis URL's host and port; see [`Proxy::url`].
    ///
    /// # Panics
    /// If the URL names no `host:port`.
    pub async fn for_redis(url: &str) -> Self {
        let hostport = url
            .trim_start_matches("redis://")
            .split('/')
            .next()
            .unwrap_or_default();
        Self::start(hostport).await
    }

    /// The proxy's own address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://<proxy address>`, for clients that should go through it.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Connections accepted so far.
    #[must_use]
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Stops forwarding in both directions; connections stay open.
    pub fn pause(&self) {
        self.shared.paused.send_replace(true);
    }

    /// Forwards again, starting with what waited.
    pub fn resume(&self) {
        self.shared.paused.send_replace(false);
    }

    /// Closes every open connection; new ones are accepted as before.
    pub fn cut_all(&self) {
        if let Ok(mut c) = self.shared.conns.lock() {
            for h in c.drain(..) {
                h.abort();
            }
        }
    }

    /// The next request whose bytes contain `marker` reaches the server, and its
    /// connection is closed before the reply reaches the client. Once.
    pub fn lose_reply_to(&self, marker: &[u8]) {
        if let Ok(mut l) = self.shared.lose.lock() {
            *l = Some(marker.to_vec());
        }
    }

    /// As [`Proxy::lose_reply_to`], and the proxy pauses as that reply is dropped:
    /// the client, cut off, cannot reach the server again until [`Proxy::resume`].
    pub fn lose_reply_then_pause(&self, marker: &[u8]) {
        self.shared.pause_at_loss.store(true, Ordering::SeqCst);
        self.lose_reply_to(marker);
    }

    /// How many replies [`Proxy::lose_reply_to`] has lost so far.
    #[must_use]
    pub fn lost_replies(&self) -> usize {
        self.shared.lost_replies.load(Ordering::SeqCst)
    }

    /// Limits each connection's server-to-client bytes per second (`None`: no limit).
    pub fn throttle(&self, bytes_per_sec: Option<u64>) {
        self.shared
            .throttle
            .store(bytes_per_sec.unwrap_or(0), Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut_all();
    }
}

async fn serve(s: Arc<Shared>, client: TcpStream) {
    let Ok(server) = TcpStream::connect(s.upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    // Set when this connection carried the marked request: its next reply is dropped
    // and the connection closed.
    let doomed = Arc::new(AtomicBool::new(false));
    // One task for both directions, so aborting it closes both sockets.
    tokio::select! {
        () = client_to_server(s.clone(), cr, sw, doomed.clone()) => {}
        () = server_to_client(s, sr, cw, doomed) => {}
    }
}

async fn wait_unpaused(s: &Shared) {
    let mut rx = s.paused.subscribe();
    let _ = rx.wait_for(|p| !*p).await;
}

async fn client_to_server(
    s: Arc<Shared>,
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    doomed: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    // The end of the previous chunk, so a marker split across two reads is still seen.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        wait_unpaused(&s).await;
        let chunk = &buf[..n];
        let hit = match s.lose.lock() {
            Ok(mut l) => {
                let found = l.as_ref().is_some_and(|m| {
                    let mut seen = tail.clone();
                    seen.extend_from_slice(chunk);
                    seen.windows(m.len()).any(|w| w == m.as_slice())
                });
                if found {
                    *l = None;
                }
                found
            }
            Err(_) => false,
        };
        if hit {
            doomed.store(true, Ordering::SeqCst);
        }
        if to.write_all(chunk).await.is_err() {
            return;
        }
        let keep = chunk.len().min(256);
        tail = chunk[chunk.len() - keep..].to_vec();
    }
}

async fn server_to_client(
    s: Arc<Shared>,
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    doomed: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if doomed.load(Ordering::SeqCst) {
            // The server answered the marked request: the client never hears of it.
            if s.pause_at_loss.swap(false, Ordering::SeqCst) {
                s.paused.send_replace(true);
            }
            s.lost_replies.fetch_add(1, Ordering::SeqCst);
            return;
        }
        wait_unpaused(&s).await;
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        let rate = s.throttle.load(Ordering::SeqCst);
        if rate > 0 {
            // Pacing, not synchronisation: this is how the link is made slow.
            tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate as f64)).await;
        }
    }
}
