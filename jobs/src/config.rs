//! Settings every Drover binary shares. Each binary's own `config` module reads these
//! with its own.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DROVER_ENV` | `dev` | `dev` or `prod`: prod wants API keys and logs JSON |
//! | `REDIS_URL` | `redis://127.0.0.1:6379` | the Redis that carries the queues; a cluster is `redis+cluster://host:port,host:port,…` (some of its nodes) |
//! | `DROVER_REDIS_WAIT_REPLICAS` | `0` | replicas that must confirm each enqueue and acknowledgement (`WAIT`) before it counts; past the timeout the API answers 503 |
//! | `DROVER_REDIS_WAIT_TIMEOUT_MS` | `1000` | how long that `WAIT` waits |
//! | `DROVER_DATA_DIR` | `./data` | files: SQLite database, exports, uploads, embedded Redis |
//! | `DATABASE_URL` | `sqlite://<data dir>/drover.db?mode=rwc` | SQLite or PostgreSQL |
//! | `DROVER_AUTO_MIGRATE` | `true` | apply migrations at start |
//! | `DROVER_REDIS_NAMESPACE` | `drover` | prefix of every Redis key (`{drover:export}:…`) |
//! | `DROVER_REDIS_POOL_SIZE` | `16` | most Redis connections for enqueues, reads and admin calls (workers' lease traffic has one more of its own) |
//! | `DROVER_REDIS_CONNECT_TIMEOUT_MS` | `2000` | give up connecting after this |
//! | `DROVER_REDIS_TIMEOUT_MS` | `5000` | treat Redis as down when it does not answer in this |
//! | `DROVER_EVENTS_MAXLEN` | `10000` | events kept per queue stream (approximately) |
//! | `DROVER_STATS_WINDOW_HOURS` | `48` | per-minute counters are kept this long (at least 48, so a late or caught-up aggregation still finds a day's counters) |
//! | `DROVER_LOG_FORMAT` | `pretty` in dev, `json` in prod | log lines for people or for machines |
//! | `RUST_LOG` | `info` | log filter, e.g. `info,drover_queue=debug` |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | — | export spans over OTLP/HTTP (JSON) to this collector, e.g. `http://otel:4318` |
//! | `OTEL_SERVICE_NAME` | the binary's name | the service name spans carry |

use std::path::PathBuf;
use std::time::Duration;

use drover_queue::{QueueSettings, RedisConfig};

use crate::env::{ConfigError, Env};
use crate::telemetry::LogFormat;

/// `dev` or `prod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DroverEnv {
    /// Local development: test events, a generated admin key, readable logs.
    Dev,
    /// Production: API keys required, JSON logs.
    Prod,
}

/// The shared settings.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub env: DroverEnv,
    pub redis_url: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub auto_migrate: bool,
    pub namespace: String,
    pub redis_pool_size: usize,
    pub redis_connect_timeout: Duration,
    pub redis_timeout: Duration,
    pub redis_wait_replicas: u32,
    pub redis_wait_timeout: Duration,
    pub events_maxlen: u64,
    pub stats_window: Duration,
    pub log_format: LogFormat,
    pub log_filter: String,
    /// Where spans go over OTLP/HTTP; `None` exports none.
    pub otlp_endpoint: Option<String>,
    pub otel_service_name: Option<String>,
}

/// The Redis used when `REDIS_URL` is not set.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

impl CommonConfig {
    /// Reads and checks the shared settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let denv = match env.choice("DROVER_ENV", "dev", &["dev", "prod"])?.as_str() {
            "prod" => DroverEnv::Prod,
            _ => DroverEnv::Dev,
        };
        let redis_url = env.string("REDIS_URL", DEFAULT_REDIS_URL);
        drover_queue::connection::Target::parse(&redis_url).map_err(|e| {
            ConfigError::new(
                "REDIS_URL",
                format!(
                    "invalid Redis URL {:?}: {e}",
                    drover_queue::connection::redact(&redis_url)
                ),
            )
        })?;
        let data_dir = PathBuf::from(env.string("DROVER_DATA_DIR", "./data"));
        let database_url = match env.get("DATABASE_URL") {
            Some(url) => url.to_owned(),
            None => format!("sqlite://{}?mode=rwc", data_dir.join("drover.db").display()),
        };
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError::new(
                "DATABASE_URL",
                format!(
                    "unsupported database URL {database_url:?}: use sqlite://… or postgres://…"
                ),
            ));
        }
        let namespace = env.string("DROVER_REDIS_NAMESPACE", "drover");
        drover_queue::keys::validate_name(&namespace)
            .map_err(|e| ConfigError::new("DROVER_REDIS_NAMESPACE", e.to_string()))?;
        let default_format = if denv == DroverEnv::Prod {
            "json"
        } else {
            "pretty"
        };
        let log_format = match env
            .choice("DROVER_LOG_FORMAT", default_format, &["pretty", "json"])?
            .as_str()
        {
            "json" => LogFormat::Json,
            _ => LogFormat::Pretty,
        };
        let otlp_endpoint = match env.get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            None | Some("") => None,
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Some(url.to_owned())
            }
            Some(url) => {
                return Err(ConfigError::new(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    format!(
                        "not an http(s) URL: {url:?} (the OTLP/HTTP collector, e.g. http://otel:4318)"
                    ),
                ));
            }
        };
        Ok(Self {
            env: denv,
            redis_url,
            data_dir,
            database_url,
            auto_migrate: env.bool("DROVER_AUTO_MIGRATE", true)?,
            namespace,
            redis_pool_size: env.number("DROVER_REDIS_POOL_SIZE", 16, 1..=1024)? as usize,
            redis_connect_timeout: env.millis(
                "DROVER_REDIS_CONNECT_TIMEOUT_MS",
                Duration::from_secs(2),
                10..=60_000,
            )?,
            redis_timeout: env.millis(
                "DROVER_REDIS_TIMEOUT_MS",
                Duration::from_secs(5),
                10..=600_000,
            )?,
            redis_wait_replicas: env.number("DROVER_REDIS_WAIT_REPLICAS", 0, 0..=16)? as u32,
            redis_wait_timeout: env.millis(
                "DROVER_REDIS_WAIT_TIMEOUT_MS",
                Duration::from_secs(1),
                1..=60_000,
            )?,
            events_maxlen: env.number("DROVER_EVENTS_MAXLEN", 10_000, 100..=10_000_000)?,
            stats_window: Duration::from_secs(
                3600 * env.number("DROVER_STATS_WINDOW_HOURS", 48, 48..=24 * 90)?,
            ),
            log_format,
            log_filter: env.string("RUST_LOG", "info"),
            otlp_endpoint,
            otel_service_name: env.get("OTEL_SERVICE_NAME").map(str::to_owned),
        })
    }

    /// How to reach Redis.
    #[must_use]
    pub fn redis_config(&self) -> RedisConfig {
        RedisConfig {
            url: self.redis_url.clone(),
            pool_size: self.redis_pool_size,
            connect_timeout: self.redis_connect_timeout,
            response_timeout: self.redis_timeout,
            wait_replicas: self.redis_wait_replicas,
            wait_timeout: self.redis_wait_timeout,
        }
    }

    /// Settings shared by every handle on a queue.
    #[must_use]
    pub fn queue_settings(&self) -> QueueSettings {
        QueueSettings {
            events_maxlen: self.events_maxlen,
            stats_window: self.stats_window,
        }
    }

    /// Whether this is a development deployment.
    #[must_use]
    pub fn is_dev(&self) -> bool {
        self.env == DroverEnv::Dev
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_nothing_set() {
        let c = CommonConfig::from_env(&Env::default()).unwrap();
        assert_eq!(c.redis_url, DEFAULT_REDIS_URL);
        assert_eq!(c.database_url, "sqlite://./data/drover.db?mode=rwc");
        assert!(c.is_dev());
        assert_eq!(c.log_format, LogFormat::Pretty);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("DROVER_ENV", "staging"),
            ("REDIS_URL", "http://x"),
            ("DATABASE_URL", "mysql://x"),
            ("DROVER_REDIS_NAMESPACE", "Bad Name"),
            ("DROVER_AUTO_MIGRATE", "perhaps"),
            ("DROVER_REDIS_TIMEOUT_MS", "0"),
            ("DROVER_LOG_FORMAT", "xml"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "otel:4318"),
            ("DROVER_STATS_WINDOW_HOURS", "24"),
        ] {
            let e = CommonConfig::from_env(&Env::from_pairs([(var, value)])).unwrap_err();
            assert_eq!(e.var, var, "{e}");
        }
    }

    #[test]
    fn prod_logs_json() {
        let c = CommonConfig::from_env(&Env::from_pairs([("DROVER_ENV", "prod")])).unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
    }
}
