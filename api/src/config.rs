//! The API's configuration, read once at start.
//!
//! Besides the shared settings (`drover_jobs::config`):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DROVER_API_ADDR` | `127.0.0.1:8080` | where to listen |
//! | `DROVER_API_KEYS` | none | `role:key,role:key`; roles are `submitter` and `admin` |
//! | `DROVER_METRICS_ADDR` | none | serve `/metrics` on this address of its own instead of `DROVER_API_ADDR` (which then answers 404 there), so that scrapes stay off the public port |
//! | `DROVER_METRICS_QUEUE_CACHE_MS` | `1000` | how long the queue gauges read from Redis for `/metrics` are reused before a scrape reads them again (0: every scrape) |
//! | `DROVER_API_BODY_LIMIT` | `1048576` | largest JSON request body, in bytes |
//! | `DROVER_API_KEY_CACHE_MS` | `5000` | how long a verified key is trusted without asking the database; a revoked key stops working within this (0: ask every time) |
//! | `DROVER_API_AUTH_FAILURES` | `30` | failed authentications one client address may make per minute (a burst of as many), past which it gets 429 before its keys are looked up (0: no limit) |
//! | `DROVER_API_RATE_SUBMITTER` | `100` | requests per second each submitter key may make, on average (0: no limit) |
//! | `DROVER_API_BURST_SUBMITTER` | twice the rate | requests a submitter key may make at once after a quiet spell |
//! | `DROVER_API_RATE_ADMIN` | `100` | requests per second each admin key may make, on average (0: no limit) |
//! | `DROVER_API_BURST_ADMIN` | twice the rate | requests an admin key may make at once after a quiet spell |
//! | `DROVER_DATASET_MAX_BYTES` | `10737418240` (10 GiB) | largest dataset upload; past it the upload answers 413 (the JSON body limit does not apply to uploads) |
//! | `DROVER_DATASET_CHUNK_BYTES` | `67108864` (64 MiB) | an upload records a record-aligned offset about every this many bytes |
//! | `DROVER_UI_SESSION_SECS` | `28800` (8 h) | a dashboard sign-in ends after this long unused (60 s to 30 days) |
//! | `DROVER_SEARCH_SCAN_MAX` | `5000` | most jobs one search call examines in Redis (and rows in the archive) before it answers with a cursor (100 to 100000) |
//!
//! Server-Sent Events have their own settings: see [`SseConfig`].

use std::net::SocketAddr;
use std::time::Duration;

use drover_jobs::config::CommonConfig;
use drover_jobs::env::{ConfigError, Env};

use crate::auth::Role;

/// A key given in `DROVER_API_KEYS`.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfiguredKey {
    /// What the key may do.
    pub role: Role,
    /// The secret itself.
    pub key: String,
}

impl std::fmt::Debug for ConfiguredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfiguredKey")
            .field("role", &self.role)
            .field("key", &"***")
            .finish()
    }
}

/// A token bucket: `per_second` tokens flow in, up to `burst`; each request takes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Average requests per second; 0 turns the limit off.
    pub per_second: u32,
    /// Most requests at once.
    pub burst: u32,
}

impl RateLimit {
    /// Whether requests are limited at all.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.per_second > 0
    }
}

/// The API's settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub common: CommonConfig,
    pub addr: SocketAddr,
    /// Where `/metrics` is served, when not on `addr`.
    pub metrics_addr: Option<SocketAddr>,
    /// How long the queue gauges of `/metrics` are reused: a scrape runs several Redis
    /// scripts per queue, and scrapers (or anyone, since `/metrics` needs no key) may
    /// call it often.
    pub metrics_queue_cache: Duration,
    pub api_keys: Vec<ConfiguredKey>,
    pub body_limit: usize,
    /// How long a verified key is trusted before the database is asked again: the
    /// bound on how long a revoked key keeps working.
    pub key_cache_ttl: Duration,
    /// Failed authentications per client address per minute (0: no limit).
    pub auth_failures_per_minute: u32,
    pub rate_submitter: RateLimit,
    pub rate_admin: RateLimit,
    pub sse: SseConfig,
    /// Largest dataset upload, in bytes.
    pub dataset_max_bytes: u64,
    /// Bytes between two recorded offsets of a dataset.
    pub dataset_chunk_bytes: u64,
    /// How long a dashboard sign-in lasts without use: its session is forgotten then
    /// (each use renews it), so a browser left open does not stay signed in forever.
    pub ui_session_ttl: Duration,
    /// Most jobs one search call examines (in Redis, and rows in the archive): the
    /// bound that keeps a search from blocking Redis; a cursor continues it.
    pub search_scan_max: u32,
}

/// Default requests per second per key.
pub const DEFAULT_RATE: u64 = 100;

/// Shortest API key accepted: shorter keys can be guessed.
pub const MIN_KEY_LEN: usize = 16;

impl ApiConfig {
    /// Reads and checks the settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(env)?;
        let addr = env.parse(
            "DROVER_API_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            "socket address",
        )?;
        let metrics_addr = match env.get("DROVER_METRICS_ADDR").map(str::trim) {
            None | Some("") => None,
            Some(_) => Some(env.parse(
                "DROVER_METRICS_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 9465)),
                "socket address",
            )?),
        };
        if metrics_addr == Some(addr) {
            return Err(ConfigError::new(
                "DROVER_METRICS_ADDR",
                "must differ from DROVER_API_ADDR (leave it unset to serve /metrics there)",
            ));
        }
        let metrics_queue_cache = env.millis(
            "DROVER_METRICS_QUEUE_CACHE_MS",
            Duration::from_secs(1),
            0..=600_000,
        )?;
        let api_keys = parse_keys(env.get("DROVER_API_KEYS").unwrap_or(""))?;
        let body_limit = env.number(
            "DROVER_API_BODY_LIMIT",
            1024 * 1024,
            1024..=1024 * 1024 * 1024,
        )? as usize;
        let key_cache_ttl = env.millis(
            "DROVER_API_KEY_CACHE_MS",
            Duration::from_secs(5),
            0..=60_000,
        )?;
        let auth_failures_per_minute =
            env.number("DROVER_API_AUTH_FAILURES", 30, 0..=1_000_000)? as u32;
        let sse = SseConfig::from_env(env)?;
        let ui_session_ttl = Duration::from_secs(env.number(
            "DROVER_UI_SESSION_SECS",
            8 * 3600,
            60..=30 * 24 * 3600,
        )?);
        let search_scan_max = env.number("DROVER_SEARCH_SCAN_MAX", 5000, 100..=100_000)? as u32;
        Ok(Self {
            ui_session_ttl,
            search_scan_max,
            auth_failures_per_minute,
            common,
            addr,
            metrics_addr,
            metrics_queue_cache,
            api_keys,
            body_limit,
            key_cache_ttl,
            rate_submitter: rate_limit(env, "SUBMITTER")?,
            rate_admin: rate_limit(env, "ADMIN")?,
            sse,
            dataset_max_bytes: env.number(
                "DROVER_DATASET_MAX_BYTES",
                10 * 1024 * 1024 * 1024,
                1..=u64::MAX / 2,
            )?,
            dataset_chunk_bytes: env.number(
                "DROVER_DATASET_CHUNK_BYTES",
                64 * 1024 * 1024,
                1024..=u64::MAX / 2,
            )?,
        })
    }
}

/// Reads `DROVER_API_RATE_<ROLE>` and `DROVER_API_BURST_<ROLE>`.
fn rate_limit(env: &Env, role: &str) -> Result<RateLimit, ConfigError> {
    let rate_var = format!("DROVER_API_RATE_{role}");
    let burst_var = format!("DROVER_API_BURST_{role}");
    let per_second = env.number(&rate_var, DEFAULT_RATE, 0..=10_000_000)?;
    let burst = env.number(&burst_var, (per_second * 2).max(1), 1..=100_000_000)?;
    if per_second > 0 && burst < 1 {
        return Err(ConfigError::new(&burst_var, "must be at least 1"));
    }
    Ok(RateLimit {
        per_second: u32::try_from(per_second).unwrap_or(u32::MAX),
        burst: u32::try_from(burst).unwrap_or(u32::MAX),
    })
}

/// Parses `role:key,role:key`.
pub fn parse_keys(spec: &str) -> Result<Vec<ConfiguredKey>, ConfigError> {
    let var = "DROVER_API_KEYS";
    let mut keys = Vec::new();
    for (i, item) in spec
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
    {
        let Some((role, key)) = item.split_once(':') else {
            return Err(ConfigError::new(
                var,
                format!("entry {} is not role:key", i + 1),
            ));
        };
        let role = role.trim();
        let Ok(role) = role.parse::<Role>() else {
            return Err(ConfigError::new(
                var,
                format!(
                    "entry {}: unknown role {role:?}: use submitter or admin",
                    i + 1
                ),
            ));
        };
        let key = key.trim();
        if key.len() < MIN_KEY_LEN || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ConfigError::new(
                var,
                format!(
                    "entry {}: keys must be at least {MIN_KEY_LEN} visible characters",
                    i + 1
                ),
            ));
        }
        keys.push(ConfiguredKey {
            role,
            key: key.to_owned(),
        });
    }
    Ok(keys)
}

/// How the API serves Server-Sent Events.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `DROVER_SSE_KEEP_ALIVE_MS` | `15000` | a keep-alive comment goes out this often on every stream |
/// | `DROVER_SSE_CLIENT_BUFFER` | `1024` | events buffered per client; a client further behind gets `stream:lagged` and is closed |
/// | `DROVER_SSE_MAX_CLIENTS` | `20000` | event streams one API process serves at once; more get 503 |
/// | `DROVER_SSE_MAX_STREAMS_PER_KEY` | `1000` | event streams one API key may hold open on one API process; more get 429 |
/// | `DROVER_SSE_REPLAY_MAX` | `1000` | most events of a finished job replayed to one request (the latest; a `stream:gap` says where they start) |
#[derive(Debug, Clone)]
pub struct SseConfig {
    pub keep_alive: std::time::Duration,
    pub client_buffer: usize,
    pub max_clients: usize,
    /// So that one key (a leaked one, a runaway client) cannot take every slot.
    pub max_per_key: usize,
    /// So that the replay of a finished job costs a bounded amount of memory and
    /// bytes, however many progress events it had.
    pub replay_max: usize,
}

impl Default for SseConfig {
    fn default() -> Self {
        Self {
            keep_alive: std::time::Duration::from_secs(15),
            client_buffer: 1024,
            max_clients: 20_000,
            max_per_key: 1000,
            replay_max: 1000,
        }
    }
}

impl SseConfig {
    /// Reads and checks the SSE settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            keep_alive: env.millis("DROVER_SSE_KEEP_ALIVE_MS", d.keep_alive, 10..=300_000)?,
            client_buffer: env.number(
                "DROVER_SSE_CLIENT_BUFFER",
                d.client_buffer as u64,
                1..=65_536,
            )? as usize,
            max_clients: env.number(
                "DROVER_SSE_MAX_CLIENTS",
                d.max_clients as u64,
                1..=1_000_000,
            )? as usize,
            max_per_key: env.number(
                "DROVER_SSE_MAX_STREAMS_PER_KEY",
                d.max_per_key as u64,
                1..=1_000_000,
            )? as usize,
            replay_max: env.number("DROVER_SSE_REPLAY_MAX", d.replay_max as u64, 1..=100_000)?
                as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_address_names_the_variable() {
        let e = ApiConfig::from_env(&Env::from_pairs([("DROVER_API_ADDR", "x")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"DROVER_API_ADDR: invalid socket address "x""#
        );
    }

    #[test]
    fn keys_parse_and_are_checked() {
        let k = parse_keys("admin:0123456789abcdef, submitter:fedcba9876543210").unwrap();
        assert_eq!(k.len(), 2);
        assert_eq!(k[1].role, Role::Submitter);
        assert!(
            parse_keys("root:0123456789abcdef")
                .unwrap_err()
                .message
                .contains("unknown role")
        );
        assert!(
            parse_keys("admin:short")
                .unwrap_err()
                .message
                .contains("at least")
        );
        assert!(parse_keys("admin").is_err());
        assert!(format!("{:?}", k[0]).contains("***"));
    }

    #[test]
    fn rate_limits_default_and_are_checked() {
        let c = ApiConfig::from_env(&Env::default()).unwrap();
        assert_eq!(
            c.rate_submitter,
            RateLimit {
                per_second: 100,
                burst: 200
            }
        );
        assert_eq!(c.key_cache_ttl, Duration::from_secs(5));
        let c = ApiConfig::from_env(&Env::from_pairs([
            ("DROVER_API_RATE_ADMIN", "0"),
            ("DROVER_API_BURST_SUBMITTER", "7"),
        ]))
        .unwrap();
        assert!(!c.rate_admin.is_enabled());
        assert_eq!(c.rate_submitter.burst, 7);
        let e =
            ApiConfig::from_env(&Env::from_pairs([("DROVER_API_BURST_ADMIN", "0")])).unwrap_err();
        assert_eq!(e.var, "DROVER_API_BURST_ADMIN");
        let e =
            ApiConfig::from_env(&Env::from_pairs([("DROVER_API_KEY_CACHE_MS", "x")])).unwrap_err();
        assert_eq!(e.var, "DROVER_API_KEY_CACHE_MS");
    }

    #[test]
    fn the_metrics_listener_is_optional_and_checked() {
        let c = ApiConfig::from_env(&Env::default()).unwrap();
        assert_eq!(c.metrics_addr, None);
        assert_eq!(c.metrics_queue_cache, Duration::from_secs(1));
        let c = ApiConfig::from_env(&Env::from_pairs([("DROVER_METRICS_ADDR", "0.0.0.0:9465")]))
            .unwrap();
        assert_eq!(c.metrics_addr, Some(SocketAddr::from(([0, 0, 0, 0], 9465))));
        let e =
            ApiConfig::from_env(&Env::from_pairs([("DROVER_METRICS_ADDR", "here")])).unwrap_err();
        assert_eq!(e.var, "DROVER_METRICS_ADDR");
        let e = ApiConfig::from_env(&Env::from_pairs([
            ("DROVER_API_ADDR", "127.0.0.1:9000"),
            ("DROVER_METRICS_ADDR", "127.0.0.1:9000"),
        ]))
        .unwrap_err();
        assert_eq!(e.var, "DROVER_METRICS_ADDR");
        let e = ApiConfig::from_env(&Env::from_pairs([("DROVER_API_AUTH_FAILURES", "-1")]))
            .unwrap_err();
        assert_eq!(e.var, "DROVER_API_AUTH_FAILURES");
    }

    #[test]
    fn sse_settings_are_checked() {
        let c =
            SseConfig::from_env(&Env::from_pairs([("DROVER_SSE_KEEP_ALIVE_MS", "250")])).unwrap();
        assert_eq!(c.keep_alive, std::time::Duration::from_millis(250));
        assert_eq!(c.client_buffer, 1024);
        let e =
            SseConfig::from_env(&Env::from_pairs([("DROVER_SSE_CLIENT_BUFFER", "0")])).unwrap_err();
        assert_eq!(e.var, "DROVER_SSE_CLIENT_BUFFER");
        let e = SseConfig::from_env(&Env::from_pairs([("DROVER_SSE_MAX_STREAMS_PER_KEY", "0")]))
            .unwrap_err();
        assert_eq!(e.var, "DROVER_SSE_MAX_STREAMS_PER_KEY");
        assert_eq!(c.max_per_key, 1000);
        assert_eq!(c.replay_max, 1000);
    }
}
