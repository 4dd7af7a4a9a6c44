//! The worker's configuration, read once at start.
//!
//! Besides the shared settings (`drover_jobs::config`):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DROVER_WORKER_QUEUES` | all four | the queues this process serves, comma-separated |
//! | `DROVER_WORKER_CONCURRENCY` | `export=2,analysis=2,aggregation=4,cleanup=1` | jobs run at once, per queue (`queue=n,…`), or one number for all |
//! | `DROVER_WORKER_PREFETCH` | `0` | jobs leased ahead of a free slot, per queue |
//! | `DROVER_WORKER_FETCH_COALESCE_MS` | `1` | a busy worker with only a few free slots waits up to this long for more before it fetches, so one fetch leases many jobs; `0` fetches at once |
//! | `DROVER_LEASE_MS` | `30000` | a crashed worker's jobs run again after this |
//! | `DROVER_RESCUE_INTERVAL_MS` | `5000` | how often expired leases are looked for |
//! | `DROVER_HEARTBEAT_INTERVAL_MS` | `5000` | how often the worker says it is alive |
//! | `DROVER_RATE_LIMIT` | none | a global rate limit per queue, across every worker: `queue=N/PERIOD[:BURST],…` (`export=3/s:5`, `analysis=60/min`; `none` for no limit); applied at start unless an admin set the queue's limits through the API |
//! | `DROVER_MAX_ACTIVE` | none | at most this many jobs of the queue active at once across every worker: `queue=n,…` (`none` for no cap); applied like `DROVER_RATE_LIMIT` |
//! | `DROVER_POLL_INTERVAL_MS` | `1000` | an idle worker looks at its queue at least this often |
//! | `DROVER_SHUTDOWN_TIMEOUT_MS` | `30000` | on SIGTERM, how long running jobs may take to finish; those still running then are handed back to their queue |
//! | `DROVER_WORKER_METRICS_ADDR` | `127.0.0.1:9464` | Prometheus `/metrics` of this process; `off` for none |
//! | `DROVER_EXPORT_TTL_HOURS` | `168` | an export file expires (the cleanup job deletes it) this long after it was made |
//! | `DROVER_RETENTION` | `true` | enforce the served queues' retention (archive, then remove finished jobs) |
//! | `DROVER_RETENTION_COMPLETED_AGE_S` | `3600` | completed jobs leave Redis this long after they finished (`n` for all queues and/or `queue=n,…`) |
//! | `DROVER_RETENTION_COMPLETED_COUNT` | `10000` | … or once this many completed jobs are newer |
//! | `DROVER_RETENTION_FAILED_AGE_S` | `604800` | failed jobs: the same, seven days |
//! | `DROVER_RETENTION_FAILED_COUNT` | `100000` | failed jobs: the same count |
//! | `DROVER_ARCHIVE` | `all` | what is archived to `job_history` first: `all`, `failed` or `none` (per queue too) |
//! | `DROVER_RETENTION_INTERVAL_MS` | `1000` | pause after a retention pass that found less than a full batch |
//! | `DROVER_RETENTION_BATCH` | `1000` | jobs archived and removed per step (one transaction, two scripts) |
//! | `DROVER_RETENTION_HOLD_BACKLOG` | `50000` | finished jobs past a queue's count limit the archive may fall behind by before the queue's starts are held until it catches up (`0`: never hold) |
//! | `DROVER_ANALYSIS_CHECKPOINT_ROWS` | `200000` | an analysis checkpoints after this many rows… |
//! | `DROVER_ANALYSIS_CHECKPOINT_MS` | `5000` | …or this much time, whichever comes first |

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use drover_jobs::QueueName;
use drover_jobs::config::CommonConfig;
use drover_jobs::env::{ConfigError, Env};
use drover_queue::flow::{FlowLimits, RateLimit, check_max_active};
use drover_queue::retention::{ArchiveMode, EnforcerOptions, Limits, Retention};
use drover_queue::worker::WorkerOptions;

/// The worker's settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub common: CommonConfig,
    /// The queues served, with the options of each.
    pub queues: BTreeMap<QueueName, WorkerOptions>,
    pub shutdown_timeout: Duration,
    pub metrics_addr: Option<SocketAddr>,
    /// How long export files are kept.
    pub export_ttl: Duration,
    pub retention: RetentionConfig,
    /// How often analyses checkpoint and report progress.
    pub analysis: drover_analysis::job::RunConfig,
    /// The configured flow limits of each queue (queues not listed have none).
    pub flow: BTreeMap<QueueName, FlowLimits>,
}

impl WorkerConfig {
    /// The configured flow limits of queue `q`.
    #[must_use]
    pub fn flow_limits(&self, q: QueueName) -> FlowLimits {
        self.flow.get(&q).copied().unwrap_or_default()
    }
}

/// `DROVER_RATE_LIMIT` and `DROVER_MAX_ACTIVE`.
fn flow_from_env(env: &Env) -> Result<BTreeMap<QueueName, FlowLimits>, ConfigError> {
    let rates = per_queue(
        env,
        "DROVER_RATE_LIMIT",
        "N/PERIOD[:BURST] such as 5/s, 60/min or 3/s:5 (N and BURST at least 1, PERIOD 1 ms to 1 day), or none",
        |s: &str| match s {
            "none" => Some(None),
            _ => s.parse::<RateLimit>().ok().map(Some),
        },
    )?;
    let caps = per_queue(
        env,
        "DROVER_MAX_ACTIVE",
        "a number from 1 to 1000000, or none",
        |s: &str| match s {
            "none" => Some(None),
            _ => s
                .parse::<i64>()
                .ok()
                .and_then(|n| check_max_active(n).ok())
                .map(Some),
        },
    )?;
    Ok(QueueName::ALL
        .into_iter()
        .map(|q| {
            let limits = FlowLimits {
                rate_limit: pick(&rates, q, None),
                max_active: pick(&caps, q, None),
            };
            (q, limits)
        })
        .collect())
}

/// The retention of each queue, and how the enforcers pace themselves.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// Off: finished jobs stay in Redis (until an admin cleans them).
    pub enabled: bool,
    /// Every queue's retention (queues not listed get [`Retention::default`]).
    pub queues: BTreeMap<QueueName, Retention>,
    pub enforcer: EnforcerOptions,
}

impl RetentionConfig {
    /// The retention of queue `q`.
    #[must_use]
    pub fn of(&self, q: QueueName) -> Retention {
        self.queues.get(&q).copied().unwrap_or_default()
    }

    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Retention::default();
        let count = |s: &str| {
            s.parse::<u64>()
                .ok()
                .filter(|n| *n <= drover_queue::retention::MAX_COUNT)
        };
        let age = |s: &str| {
            s.parse::<u64>()
                .ok()
                .map(Duration::from_secs)
                .filter(|a| *a <= drover_queue::retention::MAX_AGE)
        };
        let c_age = per_queue(
            env,
            "DROVER_RETENTION_COMPLETED_AGE_S",
            "seconds, at most 315360000",
            age,
        )?;
        let c_count = per_queue(
            env,
            "DROVER_RETENTION_COMPLETED_COUNT",
            "a count, at most 100000000",
            count,
        )?;
        let f_age = per_queue(
            env,
            "DROVER_RETENTION_FAILED_AGE_S",
            "seconds, at most 315360000",
            age,
        )?;
        let f_count = per_queue(
            env,
            "DROVER_RETENTION_FAILED_COUNT",
            "a count, at most 100000000",
            count,
        )?;
        let archive = per_queue(env, "DROVER_ARCHIVE", "all, failed or none", |s: &str| {
            s.parse::<ArchiveMode>().ok()
        })?;
        let queues = QueueName::ALL
            .into_iter()
            .map(|q| {
                let r = Retention {
                    completed: Limits {
                        max_age: pick(&c_age, q, d.completed.max_age),
                        max_count: pick(&c_count, q, d.completed.max_count),
                    },
                    failed: Limits {
                        max_age: pick(&f_age, q, d.failed.max_age),
                        max_count: pick(&f_count, q, d.failed.max_count),
                    },
                    archive: pick(&archive, q, d.archive),
                };
                (q, r)
            })
            .collect();
        let enforcer = EnforcerOptions {
            interval: env.millis(
                "DROVER_RETENTION_INTERVAL_MS",
                Duration::from_secs(1),
                10..=600_000,
            )?,
            batch: env.number("DROVER_RETENTION_BATCH", 1000, 1..=5000)? as usize,
            hold_backlog: env.number("DROVER_RETENTION_HOLD_BACKLOG", 50_000, 0..=100_000_000)?,
            ..EnforcerOptions::default()
        };
        Ok(Self {
            enabled: env.bool("DROVER_RETENTION", true)?,
            queues,
            enforcer,
        })
    }
}

/// The value for queue `q`: its own, else the one for every queue, else `default`.
fn pick<T: Copy>(m: &BTreeMap<Option<QueueName>, T>, q: QueueName, default: T) -> T {
    m.get(&Some(q)).or(m.get(&None)).copied().unwrap_or(default)
}

/// `v` for every queue and/or `queue=v,…`, each `v` read by `parse` (which says what
/// it expects as `what`); key `None` is the value for every queue.
fn per_queue<T>(
    env: &Env,
    var: &str,
    what: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<BTreeMap<Option<QueueName>, T>, ConfigError> {
    let mut m = BTreeMap::new();
    let Some(spec) = env.get(var) else {
        return Ok(m);
    };
    let value = |s: &str| {
        parse(s.trim())
            .ok_or_else(|| ConfigError::new(var, format!("invalid value {s:?}: expected {what}")))
    };
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.split_once('=') {
            None => {
                m.insert(None, value(item)?);
            }
            Some((q, v)) => {
                let q = q
                    .trim()
                    .parse::<QueueName>()
                    .map_err(|e| ConfigError::new(var, e.to_string()))?;
                m.insert(Some(q), value(v)?);
            }
        }
    }
    Ok(m)
}

/// Concurrency per queue when `DROVER_WORKER_CONCURRENCY` is not set.
fn default_concurrency(q: QueueName) -> usize {
    match q {
        QueueName::Export | QueueName::Analysis => 2,
        QueueName::Aggregation => 4,
        QueueName::Cleanup => 1,
    }
}

impl WorkerConfig {
    /// Reads and checks the settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(env)?;
        let served = match env.get("DROVER_WORKER_QUEUES") {
            None => QueueName::ALL.to_vec(),
            Some(list) => {
                let mut v = Vec::new();
                for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let q = name
                        .parse::<QueueName>()
                        .map_err(|e| ConfigError::new("DROVER_WORKER_QUEUES", e.to_string()))?;
                    if !v.contains(&q) {
                        v.push(q);
                    }
                }
                if v.is_empty() {
                    return Err(ConfigError::new("DROVER_WORKER_QUEUES", "names no queue"));
                }
                v
            }
        };
        let concurrency = parse_concurrency(env.get("DROVER_WORKER_CONCURRENCY"))?;
        let base = WorkerOptions {
            prefetch: env.number("DROVER_WORKER_PREFETCH", 0, 0..=1000)? as usize,
            fetch_coalesce: env.millis(
                "DROVER_WORKER_FETCH_COALESCE_MS",
                Duration::from_millis(1),
                0..=100,
            )?,
            lease: env.millis("DROVER_LEASE_MS", Duration::from_secs(30), 200..=3_600_000)?,
            rescue_interval: env.millis(
                "DROVER_RESCUE_INTERVAL_MS",
                Duration::from_secs(5),
                50..=600_000,
            )?,
            heartbeat_interval: env.millis(
                "DROVER_HEARTBEAT_INTERVAL_MS",
                Duration::from_secs(5),
                50..=600_000,
            )?,
            poll_interval: env.millis(
                "DROVER_POLL_INTERVAL_MS",
                Duration::from_secs(1),
                10..=60_000,
            )?,
            ..WorkerOptions::default()
        };
        let queues = served
            .into_iter()
            .map(|q| {
                let c = concurrency
                    .get(&Some(q))
                    .or(concurrency.get(&None))
                    .copied()
                    .unwrap_or(default_concurrency(q));
                (
                    q,
                    WorkerOptions {
                        concurrency: c,
                        ..base.clone()
                    },
                )
            })
            .collect();
        let metrics_addr = match env.get("DROVER_WORKER_METRICS_ADDR") {
            Some("off" | "none") => None,
            _ => Some(env.parse(
                "DROVER_WORKER_METRICS_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 9464)),
                "socket address",
            )?),
        };
        Ok(Self {
            common,
            queues,
            shutdown_timeout: env.millis(
                "DROVER_SHUTDOWN_TIMEOUT_MS",
                Duration::from_secs(30),
                0..=3_600_000,
            )?,
            metrics_addr,
            export_ttl: Duration::from_secs(
                3600 * env.number("DROVER_EXPORT_TTL_HOURS", 7 * 24, 1..=24 * 366)?,
            ),
            retention: RetentionConfig::from_env(env)?,
            flow: flow_from_env(env)?,
            analysis: drover_analysis::job::RunConfig {
                checkpoint_rows: env.number(
                    "DROVER_ANALYSIS_CHECKPOINT_ROWS",
                    200_000,
                    1..=1_000_000_000,
                )?,
                checkpoint_every: env.millis(
                    "DROVER_ANALYSIS_CHECKPOINT_MS",
                    Duration::from_secs(5),
                    10..=3_600_000,
                )?,
                progress_every: Duration::from_secs(1),
            },
        })
    }
}

/// `queue=n,…` (key `Some(queue)`) or a bare `n` for every queue (key `None`).
fn parse_concurrency(
    spec: Option<&str>,
) -> Result<BTreeMap<Option<QueueName>, usize>, ConfigError> {
    let var = "DROVER_WORKER_CONCURRENCY";
    let mut m = BTreeMap::new();
    let Some(spec) = spec else { return Ok(m) };
    let number = |s: &str| -> Result<usize, ConfigError> {
        match s.trim().parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(n),
            _ => Err(ConfigError::new(
                var,
                format!("invalid concurrency {s:?}: expected 1 to 1000"),
            )),
        }
    };
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.split_once('=') {
            None => {
                m.insert(None, number(item)?);
            }
            Some((q, n)) => {
                let q = q
                    .trim()
                    .parse::<QueueName>()
                    .map_err(|e| ConfigError::new(var, e.to_string()))?;
                m.insert(Some(q), number(n)?);
            }
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_serve_every_queue() {
        let c = WorkerConfig::from_env(&Env::default()).unwrap();
        assert_eq!(c.queues.len(), 4);
        assert_eq!(c.queues[&QueueName::Aggregation].concurrency, 4);
        assert_eq!(
            c.metrics_addr,
            Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
    }

    #[test]
    fn queues_and_concurrency_are_read() {
        let env = Env::from_pairs([
            ("DROVER_WORKER_QUEUES", "export, cleanup"),
            ("DROVER_WORKER_CONCURRENCY", "8,cleanup=3"),
            ("DROVER_WORKER_METRICS_ADDR", "off"),
        ]);
        let c = WorkerConfig::from_env(&env).unwrap();
        assert_eq!(
            c.queues.keys().copied().collect::<Vec<_>>(),
            [QueueName::Export, QueueName::Cleanup]
        );
        assert_eq!(c.queues[&QueueName::Export].concurrency, 8);
        assert_eq!(c.queues[&QueueName::Cleanup].concurrency, 3);
        assert_eq!(c.metrics_addr, None);
    }

    #[test]
    fn retention_defaults_and_per_queue_values() {
        let c = WorkerConfig::from_env(&Env::default()).unwrap();
        assert!(c.retention.enabled);
        assert_eq!(c.retention.of(QueueName::Export), Retention::default());
        let env = Env::from_pairs([
            ("DROVER_RETENTION_COMPLETED_AGE_S", "60,export=7200"),
            ("DROVER_RETENTION_FAILED_COUNT", "cleanup=5"),
            ("DROVER_ARCHIVE", "failed,analysis=none"),
            ("DROVER_RETENTION_BATCH", "250"),
            ("DROVER_RETENTION_HOLD_BACKLOG", "0"),
        ]);
        let r = WorkerConfig::from_env(&env).unwrap().retention;
        assert_eq!(
            r.of(QueueName::Export).completed.max_age,
            Duration::from_secs(7200)
        );
        assert_eq!(
            r.of(QueueName::Cleanup).completed.max_age,
            Duration::from_secs(60)
        );
        assert_eq!(r.of(QueueName::Cleanup).failed.max_count, 5);
        assert_eq!(r.of(QueueName::Export).failed.max_count, 100_000);
        assert_eq!(r.of(QueueName::Export).archive, ArchiveMode::Failed);
        assert_eq!(r.of(QueueName::Analysis).archive, ArchiveMode::None);
        assert_eq!(r.enforcer.batch, 250);
        assert_eq!(r.enforcer.hold_backlog, 0);
        assert_eq!(c.retention.enforcer.hold_backlog, 50_000);
    }

    #[test]
    fn flow_limits_are_read_per_queue() {
        let c = WorkerConfig::from_env(&Env::from_pairs([
            ("DROVER_RATE_LIMIT", "export=3/s:5,analysis=60/min"),
            ("DROVER_MAX_ACTIVE", "2,cleanup=none"),
        ]))
        .unwrap();
        let e = c.flow_limits(QueueName::Export);
        let r = e.rate_limit.unwrap();
        assert_eq!((r.limit, r.per, r.burst), (3, Duration::from_secs(1), 5));
        assert_eq!(e.max_active, Some(2));
        let a = c.flow_limits(QueueName::Analysis).rate_limit.unwrap();
        assert_eq!((a.limit, a.per, a.burst), (60, Duration::from_secs(60), 60));
        assert_eq!(c.flow_limits(QueueName::Cleanup), FlowLimits::default());
        assert_eq!(c.flow_limits(QueueName::Aggregation).rate_limit, None);
        assert_eq!(c.flow_limits(QueueName::Aggregation).max_active, Some(2));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("DROVER_WORKER_QUEUES", "export,mail"),
            ("DROVER_WORKER_CONCURRENCY", "export=0"),
            ("DROVER_LEASE_MS", "10"),
            ("DROVER_WORKER_METRICS_ADDR", "nowhere"),
            ("DROVER_EXPORT_TTL_HOURS", "0"),
            ("DROVER_RETENTION_COMPLETED_AGE_S", "an hour"),
            ("DROVER_RETENTION_FAILED_COUNT", "mail=5"),
            ("DROVER_RETENTION_COMPLETED_COUNT", "999999999999"),
            ("DROVER_ARCHIVE", "some"),
            ("DROVER_RETENTION_BATCH", "0"),
            ("DROVER_RETENTION", "maybe"),
            ("DROVER_RATE_LIMIT", "export=0/s"),
            ("DROVER_RATE_LIMIT", "export=5/s:0"),
            ("DROVER_RATE_LIMIT", "5/3d"),
            ("DROVER_MAX_ACTIVE", "export=0"),
            ("DROVER_MAX_ACTIVE", "-2"),
        ] {
            let e = WorkerConfig::from_env(&Env::from_pairs([(var, value)])).unwrap_err();
            assert_eq!(e.var, var, "{e}");
        }
    }
}
