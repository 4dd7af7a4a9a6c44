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
}

impl QueueError {
    /// Whether the error means Redis could not be reached (as opposed to a refusal).
    ///
    /// Callers use it to answer 503 and to back off and reconnect.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        match self {
            QueueError::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_unrecoverable_error()
                    || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading)
            }
            QueueError::Timeout(_) => true,
            _ => false,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = QueueError> = std::result::Result<T, E>;
