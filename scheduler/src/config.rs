//! The scheduler's configuration, read once at start.
//!
//! Besides the shared settings (`drover_jobs::config`):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DROVER_SCHEDULER_TICK_MS` | `1000` | the leader renews its lease, and the others try to take it, this often |
//! | `DROVER_SCHEDULER_LOCK_TTL_MS` | `5000` | a dead leader's lease frees after this: the takeover time |
//! | `DROVER_SCHEDULER_RELOAD_MS` | `2000` | the leader re-reads the schedules this often (API changes apply within it) |
//! | `DROVER_SCHEDULER_GRACE_MS` | `60000` | a fire at most this late is on time, whatever the missed-fire policy |
//! | `DROVER_SCHEDULER_FIRE_RETENTION_HOURS` | `720` | fire records are kept this long (the newest of each schedule always) |
//! | `DROVER_SCHEDULER_METRICS_ADDR` | `127.0.0.1:9465` | where `/metrics` is served; `off` for nowhere |

use std::net::SocketAddr;
use std::time::Duration;

use drover_jobs::config::CommonConfig;
use drover_jobs::env::{ConfigError, Env};

/// The scheduler's settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub common: CommonConfig,
    pub tick: Duration,
    pub lock_ttl: Duration,
    pub reload: Duration,
    pub grace: Duration,
    pub fire_retention: Duration,
    pub metrics_addr: Option<SocketAddr>,
}

impl SchedulerConfig {
    /// Reads and checks the settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(env)?;
        let tick = env.millis(
            "DROVER_SCHEDULER_TICK_MS",
            Duration::from_secs(1),
            10..=60_000,
        )?;
        let lock_ttl = env.millis(
            "DROVER_SCHEDULER_LOCK_TTL_MS",
            Duration::from_secs(5),
            100..=600_000,
        )?;
        if lock_ttl <= tick * 2 {
            return Err(ConfigError::new(
                "DROVER_SCHEDULER_LOCK_TTL_MS",
                "must be more than twice DROVER_SCHEDULER_TICK_MS, or the leader loses its lock between ticks",
            ));
        }
        let reload = env.millis(
            "DROVER_SCHEDULER_RELOAD_MS",
            Duration::from_secs(2),
            10..=600_000,
        )?;
        let grace = env.millis(
            "DROVER_SCHEDULER_GRACE_MS",
            Duration::from_secs(60),
            0..=86_400_000,
        )?;
        let fire_retention = Duration::from_secs(
            3600 * env.number("DROVER_SCHEDULER_FIRE_RETENTION_HOURS", 720, 1..=24 * 3650)?,
        );
        let metrics_addr = match env.get("DROVER_SCHEDULER_METRICS_ADDR") {
            Some("off" | "none") => None,
            _ => Some(env.parse(
                "DROVER_SCHEDULER_METRICS_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 9465)),
                "socket address",
            )?),
        };
        Ok(Self {
            common,
            tick,
            lock_ttl,
            reload,
            grace,
            fire_retention,
            metrics_addr,
        })
    }
}
