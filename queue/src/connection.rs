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
//! ([`Redis::dedicated`], [`Redis::pubsub`], [`Redis::shard_subscriber`]).
//!
//! ## A cluster
//!
//! A URL of the form `redis+cluster://host:port,host:port,…`
//! names a Redis Cluster by some of its nodes. Each lane is then a redis-rs cluster
//! connection: one multiplexed connection per
//! node, each command routed by its first key's slot, `MOVED`/`ASK` redirections and
//! failovers followed, and scripts loaded on the node that lacks them (`EVALSHA`'s
//! `NOSCRIPT` answer makes [`redis::Script`] send `SCRIPT LOAD` to every master). Every
//! script touches the keys of one queue, which share one hash tag, so every call has
//! one slot.
//!
//! ## Waiting for replicas
//!
//! Replication is asynchronous: a master that fails right after acknowledging a write
//! can lose it. With [`RedisConfig::wait_replicas`] above zero, the calls that must
//! survive a failover ([`Redis::invoke_durable`]: enqueues and acknowledgements) send
//! `WAIT` on the same connection to the same master after their script, and fail with
//! [`QueueError::NotReplicated`] (an outage: the API answers 503) when too few
//! replicas confirm in time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionInfo, FromRedisValue, IntoConnectionInfo, Pipeline,
    RedisFuture, ScriptInvocation, Value,
};

use crate::error::{QueueError, Result};

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://host:port/db` (or `rediss://`, `redis+unix://`), or a cluster:
    /// `redis+cluster://host:port,host:port,…`, naming one or
    /// more of its nodes (the rest are discovered).
    pub url: String,
    /// Most connections for general traffic (enqueues, reads, admin operations); see
    /// the [module docs](self). Worker lease traffic has one more of its own.
    pub pool_size: usize,
    /// How long to wait for a TCP connection before giving up.
    pub connect_timeout: Duration,
    /// How long to wait for an answer before treating Redis as unreachable.
    pub response_timeout: Duration,
    /// Replicas that must confirm an enqueue or an acknowledgement before it counts
    /// (`WAIT`); 0 waits for none. See the [module docs](self#waiting-for-replicas).
    pub wait_replicas: u32,
    /// How long `WAIT` waits for [`RedisConfig::wait_replicas`].
    pub wait_timeout: Duration,
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
            wait_replicas: 0,
            wait_timeout: Duration::from_secs(1),
        }
    }
}

/// The servers a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One server (`redis://`, `rediss://`, `redis+unix://`).
    Node(String),
    /// The seed nodes of a cluster, each as a `redis://` (or `rediss://`) URL.
    Cluster(Vec<String>),
}

impl Target {
    /// Reads a URL: a cluster URL is split into one URL per node, each carrying the
    /// cluster URL's credentials and query.
    pub fn parse(url: &str) -> Result<Self> {
        let Some(rest) = url.strip_prefix("redis+cluster://") else {
            url.into_connection_info()?;
            return Ok(Self::Node(url.to_owned()));
        };
        let (auth, hosts) = match rest.rfind('@') {
            Some(at) => (&rest[..=at], &rest[at + 1..]),
            None => ("", rest),
        };
        let (hosts, tail) = match hosts.find(['/', '?']) {
            Some(i) => hosts.split_at(i),
            None => (hosts, ""),
        };
        if !matches!(tail.split('?').next(), Some("" | "/" | "/0")) {
            return Err(QueueError::InvalidConfig(format!(
                "a cluster has only database 0: {:?} names another",
                redact(url)
            )));
        }
        let nodes: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| format!("redis://{auth}{h}{tail}"))
            .collect();
        if nodes.is_empty() {
            return Err(QueueError::InvalidConfig(format!(
                "{:?} names no cluster node: use redis+cluster://host:port,host:port",
                redact(url)
            )));
        }
        for n in &nodes {
            n.as_str().into_connection_info()?;
        }
        Ok(Self::Cluster(nodes))
    }
}

/// A connection to one server or to a cluster. Either runs any command: a cluster
/// connection routes each by its key's slot.
#[derive(Clone)]
pub enum Conn {
    Node(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Node(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

impl Conn {
    /// Runs a command that names no key on the master of `slot` (on one server, on
    /// that server): `SCAN` over a queue's keys, `WAIT` after a queue's script.
    pub async fn query_on_slot<T: FromRedisValue>(
        &mut self,
        cmd: &Cmd,
        slot: u16,
    ) -> redis::RedisResult<T> {
        match self {
            Self::Node(c) => cmd.query_async(c).await,
            Self::Cluster(c) => {
                let route = Route::new(slot, SlotAddr::Master);
                let v = c
                    .route_command(
                        cmd.clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?;
                T::from_redis_value(v).map_err(Into::into)
            }
        }
    }
}

/// A cheap-to-clone handle on one Redis server or one cluster.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

/// What connections are made from.
enum Clients {
    Node(redis::Client),
    Cluster {
        /// For the lanes: with the response timeout.
        lanes: Box<ClusterClient>,
        /// The seed nodes, for connections with other settings.
        nodes: Vec<ConnectionInfo>,
    },
}

struct Inner {
    clients: Clients,
    general: Vec<Lane>,
    control: Lane,
    /// For the calls that `WAIT` for replicas: a `WAIT` blocks its connection on the
    /// server until the replicas answer (up to the wait timeout), so it must not hold
    /// up lease renewals or reads on the other lanes.
    durable: Vec<Lane>,
    config: RedisConfig,
}

/// One connection, made on first use and after a failure.
#[derive(Default)]
struct Lane {
    conn: RwLock<Option<Conn>>,
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
    fn current(&self) -> Option<Conn> {
        self.conn.read().ok().and_then(|c| c.clone())
    }

    async fn get(&self, inner: &Inner) -> Result<Conn> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let conn = inner.connect(Some(inner.config.response_timeout)).await?;
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

impl Inner {
    /// A new connection, with `response_timeout` (`None`: calls wait as long as
    /// they take, for blocking commands the caller bounds itself).
    async fn connect(&self, response_timeout: Option<Duration>) -> Result<Conn> {
        let connect_timeout = self.config.connect_timeout;
        match &self.clients {
            Clients::Node(client) => {
                let cfg = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(response_timeout);
                Ok(Conn::Node(
                    client
                        .get_multiplexed_async_connection_with_config(&cfg)
                        .await?,
                ))
            }
            Clients::Cluster { lanes, nodes } => {
                let mut cfg = ClusterConfig::new().set_connection_timeout(connect_timeout);
                if let Some(t) = response_timeout {
                    cfg = cfg.set_response_timeout(t);
                } else {
                    // The lanes' client bounds its calls overall too: blocking calls
                    // need a client without that bound.
                    let client = cluster_builder(nodes, &self.config)
                        .overall_response_timeout(None)
                        .build()?;
                    return Ok(Conn::Cluster(
                        client.get_async_connection_with_config(cfg).await?,
                    ));
                }
                Ok(Conn::Cluster(
                    lanes.get_async_connection_with_config(cfg).await?,
                ))
            }
        }
    }
}

/// The lane with the fewest calls in flight (the first of them, so an idle process
/// uses one connection).
fn least_busy(lanes: &[Lane]) -> &Lane {
    let mut best = &lanes[0];
    let mut least = usize::MAX;
    for lane in lanes {
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

/// A cluster client builder for `nodes` with the configured timeouts.
fn cluster_builder(nodes: &[ConnectionInfo], config: &RedisConfig) -> ClusterClientBuilder {
    ClusterClientBuilder::new(nodes.to_vec())
        .connection_timeout(config.connect_timeout)
        .response_timeout(config.response_timeout)
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
        let clients = match Target::parse(&config.url)? {
            Target::Node(url) => Clients::Node(redis::Client::open(url.as_str())?),
            Target::Cluster(urls) => {
                let nodes = urls
                    .iter()
                    .map(|u| u.as_str().into_connection_info())
                    .collect::<redis::RedisResult<Vec<_>>>()?;
                Clients::Cluster {
                    lanes: Box::new(cluster_builder(&nodes, &config).build()?),
                    nodes,
                }
            }
        };
        let lanes = || {
            (0..config.pool_size.max(1))
                .map(|_| Lane::default())
                .collect()
        };
        let general = lanes();
        let durable = if config.wait_replicas > 0 {
            lanes()
        } else {
            Vec::new()
        };
        Ok(Self {
            inner: Arc::new(Inner {
                clients,
                general,
                control: Lane::default(),
                durable,
                config,
            }),
        })
    }

    /// The configuration this handle was built with.
    #[must_use]
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// Whether this handle talks to a cluster.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.clients, Clients::Cluster { .. })
    }

    /// The lane for `traffic`: the control lane, or the general lane with the fewest
    /// calls in flight (the first of them, so an idle process uses one connection).
    fn lane(&self, traffic: Traffic) -> &Lane {
        match traffic {
            Traffic::Control => &self.inner.control,
            Traffic::General => least_busy(&self.inner.general),
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
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.run_on(self.lane(traffic), f).await
    }

    async fn run_on<T, F, Fut>(&self, lane: &Lane, f: F) -> Result<T>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        lane.in_flight.fetch_add(1, Ordering::Relaxed);
        let _guard = InFlight(lane);
        let conn = lane.get(&self.inner).await?;
        match f(conn).await {
            Ok(v) => Ok(v),
            Err(err) => {
                // Too few replicas is no fault of the connection: keep it.
                if err.is_unavailable() && !matches!(err, QueueError::NotReplicated { .. }) {
                    lane.reset();
                }
                Err(err)
            }
        }
    }

    /// A new connection that nobody else uses, for blocking commands such as `XREAD BLOCK`.
    ///
    /// It has no response timeout: the caller bounds its blocking commands itself.
    pub async fn dedicated(&self) -> Result<Conn> {
        self.inner.connect(None).await
    }

    /// A pub/sub connection to the one server. On a cluster, where pub/sub is sharded,
    /// use [`Redis::shard_subscriber`].
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub> {
        let Clients::Node(client) = &self.inner.clients else {
            return Err(QueueError::InvalidConfig(
                "a cluster has no plain pub/sub connection: use shard_subscriber".into(),
            ));
        };
        let fut = client.get_async_pubsub();
        match tokio::time::timeout(self.inner.config.connect_timeout, fut).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(QueueError::Timeout(self.inner.config.connect_timeout)),
        }
    }

    /// A cluster connection (RESP3) whose pushes, shard messages included, go to
    /// `pushes`. `SSUBSCRIBE` on it goes to the master of the channel's slot, and
    /// redis-rs subscribes again after a reconnection or a slot move; a notice
    /// published meanwhile is lost, so callers treat each (re)subscription's
    /// confirmation as "look now".
    pub async fn shard_subscriber(
        &self,
        pushes: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
    ) -> Result<ClusterConnection> {
        let Clients::Cluster { nodes, .. } = &self.inner.clients else {
            return Err(QueueError::InvalidConfig(
                "sharded pub/sub needs a cluster: use pubsub".into(),
            ));
        };
        let client = cluster_builder(nodes, &self.inner.config)
            .use_protocol(redis::ProtocolVersion::RESP3)
            .build()?;
        let cfg = ClusterConfig::new()
            .set_connection_timeout(self.inner.config.connect_timeout)
            .set_push_sender(pushes);
        let fut = client.get_async_connection_with_config(cfg);
        match tokio::time::timeout(self.inner.config.connect_timeout * 2, fut).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(QueueError::Timeout(self.inner.config.connect_timeout * 2)),
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
            Ok(inv.invoke_async::<T>(&mut c).await?)
        })
        .await
    }

    /// Runs a script whose writes must survive a failover, on the lanes for `traffic`:
    /// with [`RedisConfig::wait_replicas`] set, on a lane of its own kind instead,
    /// where `WAIT` follows it on the same connection to the master of `slot` (the
    /// slot of the script's keys), and too few confirmations are
    /// [`QueueError::NotReplicated`]. The script's writes stand either way; what the
    /// caller learns is whether they are safe.
    pub async fn invoke_durable<T: FromRedisValue>(
        &self,
        traffic: Traffic,
        slot: u16,
        inv: &ScriptInvocation<'_>,
    ) -> Result<T> {
        let wanted = self.inner.config.wait_replicas;
        if wanted == 0 {
            return self.invoke_on(traffic, inv).await;
        }
        let timeout = self.inner.config.wait_timeout;
        self.run_on(least_busy(&self.inner.durable), |mut c| async move {
            let v = inv.invoke_async::<T>(&mut c).await?;
            let mut wait = redis::cmd("WAIT");
            wait.arg(wanted).arg(timeout.as_millis() as u64);
            let acked: u32 = c.query_on_slot(&wait, slot).await?;
            if acked < wanted {
                metrics::counter!("drover_redis_wait_timeouts_total").increment(1);
                return Err(QueueError::NotReplicated { wanted, acked });
            }
            Ok(v)
        })
        .await
    }

    /// Runs a command on a general lane.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        self.run(Traffic::General, |mut c| async move {
            Ok(cmd.query_async::<T>(&mut c).await?)
        })
        .await
    }

    /// Runs a command that names no key on the master of `slot`, on a general lane
    /// (see [`Conn::query_on_slot`]).
    pub async fn query_on_slot<T: FromRedisValue>(&self, cmd: &Cmd, slot: u16) -> Result<T> {
        self.run(Traffic::General, |mut c| async move {
            Ok(c.query_on_slot::<T>(cmd, slot).await?)
        })
        .await
    }

    /// Runs a pipeline on a general lane.
    pub async fn pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T> {
        self.run(Traffic::General, |mut c| async move {
            Ok(pipe.query_async::<T>(&mut c).await?)
        })
        .await
    }

    /// Checks that Redis answers (every master, on a cluster).
    pub async fn ping(&self) -> Result<()> {
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Target, redact};

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("redis://:secret@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn a_cluster_url_names_its_nodes() {
        assert_eq!(
            Target::parse("redis://127.0.0.1:6379/2").unwrap(),
            Target::Node("redis://127.0.0.1:6379/2".into())
        );
        assert_eq!(
            Target::parse("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001").unwrap(),
            Target::Cluster(vec![
                "redis://:pw@10.0.0.1:7000".into(),
                "redis://:pw@10.0.0.2:7001".into()
            ])
        );
        assert_eq!(
            Target::parse("redis+cluster://h:7000/?protocol=resp3").unwrap(),
            Target::Cluster(vec!["redis://h:7000/?protocol=resp3".into()])
        );
        for bad in [
            "redis+cluster://",
            "redis+cluster://h:7000/3",
            "redis+cluster://,",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
