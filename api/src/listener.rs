//! The TCP listener's accepted connections, with Nagle's algorithm off.
//!
//! An event stream writes small messages at irregular times. With Nagle's algorithm
//! on (poem leaves it on), a message written while the previous one is still
//! unacknowledged waits for that acknowledgement, which a client may delay by up to
//! 40 ms: a latency floor for every burst of progress events.

use poem::http::uri::Scheme;
use poem::listener::{Acceptor, TcpAcceptor};
use poem::web::{LocalAddr, RemoteAddr};
use tokio::net::TcpStream;

/// A TCP acceptor whose connections have `TCP_NODELAY` set.
pub struct NoDelay(pub TcpAcceptor);

impl Acceptor for NoDelay {
    type Io = TcpStream;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.0.local_addr()
    }

    async fn accept(&mut self) -> std::io::Result<(TcpStream, LocalAddr, RemoteAddr, Scheme)> {
        let (io, local, remote, scheme) = self.0.accept().await?;
        // Best effort: a socket that refuses keeps Nagle, and still works.
        if let Err(e) = io.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        Ok((io, local, remote, scheme))
    }
}
