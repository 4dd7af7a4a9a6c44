//! Connections to Redis: multiplexed *lanes*, with timeouts.
//!
//! A multiplexed connection pipelines every request sent on it, so one lane carries
//! many calls at once without a round trip to check a connection out. But a lane
//! answers in order: a large reply (a page of a thousand jobs with big payloads)
//! holds up every reply queued behind it on the same lane. So a [`Redis`] handle has
//!
//! - a **control lane** of its own for the workers' lease traffic (fetch, start,
//!   renew, acknowledge, rescue, heartbeat, progress), which no admin read ever
//!   uses, so a slow read cannot delay a lease renewal past its lease;
//! - up to [`RedisConfig::pool_size`] **general lanes** for everything else
//!   (enqueues, reads, admin operations). Each call takes the lane with the fewest
//!   calls in flight, so a slow call occupies one lane and the others go around it.
//!   Lanes connect on first use: an idle process holds one connection, a busy one
//!   up to `pool_size`.
//!
//! When a lane's connection fails it is dropped and the next call on that lane
//! reconnects. Blocking commands and pub/sub get connections of their own
//! ([`Redis::dedicated`], [`Redis::pubsub`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, ScriptInvocation};

use crate::error::{QueueError, Result};

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://host:port/db` (or `rediss://`, `redis+unix://`).
    pub url: String,
    /// Most connections for general traffic (enqueues, reads, admin operations); see
    /// the [module docs](self). Worker lease traffic has one more of its own.
    pub pool_size: usize,
    /// How long to wait for a TCP connection before giving up.
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
    client: redis::Client,
    conn_config: AsyncConnectionConfig,
    general: Vec<Lane>,
    control: Lane,
    config: RedisConfig,
}

/// One multiplexed connection, made on first use and after a failure.
#[derive(Default)]
struct Lane {
    conn: RwLock<Option<MultiplexedConnection>>,
    /// Calls sent on this lane and not yet answered.
    in_flight: AtomicUsize,
    /// Serialises reconnection, so a burst of calls makes one connection, not many.
    connecting: tokio::sync::Mutex<()>,
}

/// Counts a call in flight on a lane until dropped.
struct InFlight<'a>(&'a Lane);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Lane {
    fn current(&self) -> Option<MultiplexedConnection> {
        self.conn.read().ok().and_then(|c| c.clone())
    }

    async fn get(
        &self,
        client: &redis::Client,
        cfg: &AsyncConnectionConfig,
    ) -> Result<MultiplexedConnection> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let conn = client
            .get_multiplexed_async_connection_with_config(cfg)
            .await?;
        if let Ok(mut slot) = self.conn.write() {
            *slot = Some(conn.clone());
        }
        Ok(conn)
    }

    fn reset(&self) {
        if let Ok(mut slot) = self.conn.write() {
            *slot = None;
        }
    }
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

/// Which lanes a call goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// Enqueues, reads, admin operations: the least busy general lane.
    General,
    /// Worker lease traffic: the control lane.
    Control,
}

impl Redis {
    /// Checks the URL. Nothing connects until the first command.
    pub fn new(config: RedisConfig) -> Result<Self> {
        let conn_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout));
        let client = redis::Client::open(config.url.as_str())?;
        let general = (0..config.pool_size.max(1))
            .map(|_| Lane::default())
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                conn_config,
                general,
                control: Lane::default(),
                config,
            }),
        })
    }

    /// The configuration this handle was built with.
    #[must_use]
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// The lane for `traffic`: the control lane, or the general lane with the fewest
    /// calls in flight (the first of them, so an idle process uses one connection).
    fn lane(&self, traffic: Traffic) -> &Lane {
        match traffic {
            Traffic::Control => &self.inner.control,
            Traffic::General => {
                let mut best = &self.inner.general[0];
                let mut least = usize::MAX;
                for lane in &self.inner.general {
                    let n = lane.in_flight.load(Ordering::Relaxed);
                    if n == 0 {
                        return lane;
                    }
                    if n < least {
                        least = n;
                        best = lane;
                    }
                }
                best
            }
        }
    }

    /// Connections currently open on the general lanes (for tests and diagnostics).
    #[must_use]
    pub fn open_general_lanes(&self) -> usize {
        self.inner
            .general
            .iter()
            .filter(|l| l.current().is_some())
            .count()
    }

    /// General lanes with a call in flight now (for tests and diagnostics).
    #[must_use]
    pub fn busy_general_lanes(&self) -> usize {
        self.inner
            .general
            .iter()
            .filter(|l| l.in_flight.load(Ordering::Relaxed) > 0)
            .count()
    }

    async fn run<T, F, Fut>(&self, traffic: Traffic, f: F) -> Result<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let lane = self.lane(traffic);
        lane.in_flight.fetch_add(1, Ordering::Relaxed);
        let _guard = InFlight(lane);
        let conn = lane
            .get(&self.inner.client, &self.inner.conn_config)
            .await?;
        match f(conn).await {
            Ok(v) => Ok(v),
            Err(e) => {
                let err = QueueError::from(e);
                if err.is_unavailable() {
                    lane.reset();
                }
                Err(err)
            }
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

    /// Runs a script on a general lane.
    pub async fn invoke<T: FromRedisValue>(&self, inv: &ScriptInvocation<'_>) -> Result<T> {
        self.invoke_on(Traffic::General, inv).await
    }

    /// Runs a script on the lanes for `traffic`.
    pub async fn invoke_on<T: FromRedisValue>(
        &self,
        traffic: Traffic,
        inv: &ScriptInvocation<'_>,
    ) -> Result<T> {
        self.run(traffic, |mut c| async move {
            inv.invoke_async::<T>(&mut c).await
        })
        .await
    }

    /// Runs a command on a general lane.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        self.run(Traffic::General, |mut c| async move {
            cmd.query_async::<T>(&mut c).await
        })
        .await
    }

    /// Runs a pipeline on a general lane.
    pub async fn pipe<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T> {
        self.run(Traffic::General, |mut c| async move {
            pipe.query_async::<T>(&mut c).await
        })
        .await
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
