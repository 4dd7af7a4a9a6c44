//! Connections to Redis: a deadpool of multiplexed connections, with timeouts.
//!
//! A multiplexed connection pipelines every request sent on it, so the hot paths
//! (enqueue, fetch, acknowledge) share one *lane* taken from the pool instead of
//! checking a connection out per call: deadpool pings a connection each time it
//! hands one out, which would double the round trips. When the lane fails it is
//! dropped and the next call takes a fresh one from the pool.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use deadpool_redis::{Manager, Pool, Runtime};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, ScriptInvocation};

use crate::error::{QueueError, Result};

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://host:port/db` (or `rediss://`, `redis+unix://`).
    pub url: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// How long to wait for a TCP connection (and a pooled one) before giving up.
    pub connect_timeout: Duration,
    /// How long to wait for an answer before treating Redis as unreachable.
    pub response_timeout: Duration,
}

impl RedisConfig {
    /// A configuration for `url` with the defaults for everything else.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(5),
        }
    }
}

/// A cheap-to-clone handle on one Redis server.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    client: redis::Client,
    lane: RwLock<Option<MultiplexedConnection>>,
    config: RedisConfig,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("url", &redact(&self.inner.config.url))
            .finish()
    }
}

/// The URL with any password replaced, for logs.
#[must_use]
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

impl Redis {
    /// Builds the pool. Nothing connects until the first command.
    pub fn new(config: RedisConfig) -> Result<Self> {
        let conn_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout));
        let manager = Manager::new_with_config(config.url.as_str(), conn_config)?;
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .wait_timeout(Some(config.connect_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.response_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| QueueError::Pool(e.to_string()))?;
        let client = redis::Client::open(config.url.as_str())?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                client,
                lane: RwLock::new(None),
                config,
            }),
        })
    }

    /// The configuration this handle was built with.
    #[must_use]
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// The pool, for callers that want a connection of their own for a while.
    #[must_use]
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// The shared multiplexed lane, taken from the pool on first use or after a failure.
    pub async fn conn(&self) -> Result<MultiplexedConnection> {
        if let Some(c) = self.read_lane() {
            return Ok(c);
        }
        let pooled = self
            .inner
            .pool
            .get()
            .await
            .map_err(|e| QueueError::Pool(e.to_string()))?;
        let conn = deadpool_redis::Connection::take(pooled);
        if let Ok(mut lane) = self.inner.lane.write() {
            if let Some(existing) = lane.as_ref() {
                return Ok(existing.clone());
            }
            *lane = Some(conn.clone());
        }
        Ok(conn)
    }

    fn read_lane(&self) -> Option<MultiplexedConnection> {
        self.inner.lane.read().ok().and_then(|l| l.clone())
    }

    /// Drops the shared lane after a connection failure, so the next call reconnects.
    pub fn reset(&self) {
        if let Ok(mut lane) = self.inner.lane.write() {
            *lane = None;
        }
    }

    /// A new connection that nobody else uses, for blocking commands such as `XREAD BLOCK`.
    ///
    /// It has no response timeout: the caller bounds its blocking commands itself.
    pub async fn dedicated(&self) -> Result<MultiplexedConnection> {
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.inner.config.connect_timeout))
            .set_response_timeout(None);
        Ok(self
            .inner
            .client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await?)
    }

    /// A pub/sub connection.
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub> {
        let fut = self.inner.client.get_async_pubsub();
        match tokio::time::timeout(self.inner.config.connect_timeout, fut).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(QueueError::Timeout(self.inner.config.connect_timeout)),
        }
    }

    /// Runs a script on the shared lane, dropping the lane if the connection failed.
    pub async fn invoke<T: FromRedisValue>(&self, inv: &ScriptInvocation<'_>) -> Result<T> {
        let mut conn = self.conn().await?;
        let res = inv.invoke_async::<T>(&mut conn).await;
        self.check(res)
    }

    /// Runs a command on the shared lane, dropping the lane if the connection failed.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        let mut conn = self.conn().await?;
        let res = cmd.query_async::<T>(&mut conn).await;
        self.check(res)
    }

    /// Runs a pipeline on the shared lane, dropping the lane if the connection failed.
    pub async fn pipe<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T> {
        let mut conn = self.conn().await?;
        let res = pipe.query_async::<T>(&mut conn).await;
        self.check(res)
    }

    fn check<T>(&self, res: redis::RedisResult<T>) -> Result<T> {
        match res {
            Ok(v) => Ok(v),
            Err(e) => {
                let err = QueueError::from(e);
                if err.is_unavailable() {
                    self.reset();
                }
                Err(err)
            }
        }
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<()> {
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("redis://:secret@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
