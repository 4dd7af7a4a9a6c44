//! The scheduler's configuration, read once at start.
//!
//! Besides the shared settings (`drover_jobs::config`):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DROVER_SCHEDULER_TICK_MS` | `1000` | how often due schedules are looked for |
//! | `DROVER_SCHEDULER_LOCK_TTL_MS` | `10000` | a dead leader's lock frees after this |

use std::time::Duration;

use drover_jobs::config::CommonConfig;
use drover_jobs::env::{ConfigError, Env};

/// The scheduler's settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub common: CommonConfig,
    pub tick: Duration,
    pub lock_ttl: Duration,
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
            Duration::from_secs(10),
            100..=600_000,
        )?;
        if lock_ttl <= tick * 2 {
            return Err(ConfigError::new(
                "DROVER_SCHEDULER_LOCK_TTL_MS",
                "must be more than twice DROVER_SCHEDULER_TICK_MS, or the leader loses its lock between ticks",
            ));
        }
        Ok(Self {
            common,
            tick,
            lock_ttl,
        })
    }
}
