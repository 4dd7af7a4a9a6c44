//! The queue crate's error type.

use std::time::Duration;

/// What can go wrong talking to the queue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// Redis answered with an error, or the connection to it failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer within the response timeout.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// A queue or namespace name that cannot be used in a key.
    #[error("invalid queue name {0:?}: use 1 to 64 characters among a-z, 0-9, '_' and '-'")]
    InvalidName(String),
    /// Job options out of their allowed range.
    #[error("{0}")]
    InvalidOptions(String),
    /// A value could not be encoded as JSON.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// Redis answered in a shape the scripts never produce: a bug or a foreign key.
    #[error("unexpected reply from redis: {0}")]
    Protocol(String),
    /// A Redis setting that cannot work, such as a cluster URL naming no node.
    #[error("{0}")]
    InvalidConfig(String),
    /// Fewer replicas than `DROVER_REDIS_WAIT_REPLICAS` confirmed a write in time: it
    /// may not survive a failover, so it is not reported as done.
    #[error("only {acked} of {wanted} redis replicas confirmed the write in time")]
    NotReplicated { wanted: u32, acked: u32 },
}

impl QueueError {
    /// Whether the error means Redis could not be reached (as opposed to a refusal).
    ///
    /// Callers use it to answer 503 and to back off and reconnect. On a cluster, a
    /// failover in progress (`CLUSTERDOWN`, `TRYAGAIN`, a write reaching a demoted
    /// master, redirections past redis-rs's retries) is an outage too.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        match self {
            QueueError::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_unrecoverable_error()
                    || e.kind() == redis::ErrorKind::ClusterConnectionNotFound
                    || matches!(
                        e.kind(),
                        redis::ErrorKind::Server(
                            redis::ServerErrorKind::BusyLoading
                                | redis::ServerErrorKind::ClusterDown
                                | redis::ServerErrorKind::TryAgain
                                | redis::ServerErrorKind::MasterDown
                                | redis::ServerErrorKind::ReadOnly
                                | redis::ServerErrorKind::Moved
                                | redis::ServerErrorKind::Ask
                        )
                    )
            }
            QueueError::Timeout(_) | QueueError::NotReplicated { .. } => true,
            _ => false,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = QueueError> = std::result::Result<T, E>;
