//! What a submitter may ask of a job: delay, priority, attempts, backoff, idempotency.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{QueueError, Result};
use crate::retention::JobRetention;

/// Highest priority; 0 is the lowest and the default.
pub const MAX_PRIORITY: u16 = 1000;
/// Most attempts a job may be given.
pub const MAX_ATTEMPTS: u32 = 1000;
/// Longest a job may be delayed.
pub const MAX_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);
/// Longest an idempotency key may be remembered.
pub const MAX_IDEMPOTENCY_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default time an idempotency key is remembered.
pub const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest an idempotency key a client may send, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
/// Longest first retry delay: one day, in ms.
pub const MAX_BACKOFF_DELAY_MS: u64 = 24 * 3600 * 1000;
/// Longest retry delay: seven days, in ms.
pub const MAX_BACKOFF_MAX_DELAY_MS: u64 = 7 * MAX_BACKOFF_DELAY_MS;
/// The range of an exponential backoff's growth per attempt.
pub const BACKOFF_FACTOR_RANGE: std::ops::RangeInclusive<f64> = 1.0..=10.0;
/// Growth per attempt when a backoff does not say.
pub const DEFAULT_BACKOFF_FACTOR: f64 = 2.0;
/// Largest retry delay when a backoff does not say: one hour, in ms.
pub const DEFAULT_BACKOFF_MAX_DELAY_MS: u64 = 3_600_000;
/// Longest a stored idempotency key may be, in bytes: a client's key with its
/// namespace prefix, or an internal key.
pub const MAX_STORED_IDEMPOTENCY_KEY_LEN: usize = 320;

/// The namespace prefix of the idempotency keys that API clients send.
///
/// Idempotency keys are namespaced so that no caller can reach another's: the API
/// stores a client's key as `client:<key>`, and Drover's own callers use other
/// prefixes (the scheduler's fire keys are `schedule:<name>:<time>`). A client
/// therefore cannot claim, or replay into, a job that the scheduler will create.
pub const CLIENT_KEY_PREFIX: &str = "client:";

/// The stored form of an idempotency key sent by an API client.
#[must_use]
pub fn client_idempotency_key(key: &str) -> String {
    format!("{CLIENT_KEY_PREFIX}{key}")
}

/// How the delay before a retry grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackoffKind {
    /// `delay_ms · factor^(attempt-1)`, capped at `max_delay_ms`.
    Exponential,
    /// Always `delay_ms`.
    Fixed,
}

/// The retry delay policy of a job.
///
/// The delay before retry `n + 1`, after attempt `n` failed, is
/// `min(delay_ms · factor^(n-1), max_delay_ms)` for exponential backoff, or `delay_ms`
/// for fixed backoff; jitter then takes a random share of up to `jitter` off it, so the
/// actual delay lies in `[d · (1 - jitter), d]`. Jitter spreads out the retries of jobs
/// that failed together (a dependency that was down) instead of sending them back in a herd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// `exponential` or `fixed`.
    #[serde(rename = "type")]
    pub kind: BackoffKind,
    /// The first delay, in milliseconds.
    pub delay_ms: u64,
    /// Growth per attempt (exponential only).
    #[serde(default = "default_factor")]
    pub factor: f64,
    /// The largest delay, in milliseconds.
    #[serde(default = "default_max_delay_ms")]
    pub max_delay_ms: u64,
    /// Fraction of the delay that may be taken off at random, in `[0, 1]`.
    #[serde(default)]
    pub jitter: f64,
}

/// [`DEFAULT_BACKOFF_FACTOR`], for serde's `default`.
#[must_use]
pub fn default_factor() -> f64 {
    DEFAULT_BACKOFF_FACTOR
}

/// [`DEFAULT_BACKOFF_MAX_DELAY_MS`], for serde's `default`.
#[must_use]
pub fn default_max_delay_ms() -> u64 {
    DEFAULT_BACKOFF_MAX_DELAY_MS
}

impl Backoff {
    /// Exponential backoff from `delay_ms`, doubling, capped at one hour, 20 % jitter.
    #[must_use]
    pub fn exponential(delay_ms: u64) -> Self {
        Self {
            kind: BackoffKind::Exponential,
            delay_ms,
            factor: DEFAULT_BACKOFF_FACTOR,
            max_delay_ms: DEFAULT_BACKOFF_MAX_DELAY_MS.max(delay_ms),
            jitter: 0.2,
        }
    }

    /// Fixed backoff of `delay_ms`, no jitter.
    #[must_use]
    pub fn fixed(delay_ms: u64) -> Self {
        Self {
            kind: BackoffKind::Fixed,
            delay_ms,
            factor: 1.0,
            max_delay_ms: delay_ms,
            jitter: 0.0,
        }
    }

    /// Checks the ranges, naming the field at fault.
    pub fn validate(&self) -> Result<()> {
        if self.delay_ms > MAX_BACKOFF_DELAY_MS {
            return invalid("backoff.delay_ms must be at most 86400000 (one day)");
        }
        if !BACKOFF_FACTOR_RANGE.contains(&self.factor) {
            return invalid("backoff.factor must be between 1 and 10");
        }
        if self.max_delay_ms > MAX_BACKOFF_MAX_DELAY_MS {
            return invalid("backoff.max_delay_ms must be at most 604800000 (seven days)");
        }
        if self.max_delay_ms < self.delay_ms {
            return invalid("backoff.max_delay_ms must be at least backoff.delay_ms");
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return invalid("backoff.jitter must be between 0 and 1");
        }
        Ok(())
    }

    /// The delay before the next attempt, after attempt `attempt` (1-based) failed.
    ///
    /// `unit` is a random number in `[0, 1)` that picks the jitter.
    #[must_use]
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let base = match self.kind {
            BackoffKind::Fixed => self.delay_ms as f64,
            BackoffKind::Exponential => {
                let exp = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
                (self.delay_ms as f64) * self.factor.powi(exp)
            }
        };
        let capped = base.min(self.max_delay_ms as f64).max(0.0);
        let jittered = capped * (1.0 - self.jitter * unit.clamp(0.0, 1.0));
        Duration::from_millis(jittered.round() as u64)
    }
}

/// Per-queue defaults, applied to jobs that do not say otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDefaults {
    /// Attempts before a job fails for good.
    pub max_attempts: u32,
    /// Retry delays.
    pub backoff: Backoff,
}

impl Default for QueueDefaults {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Backoff::exponential(1000),
        }
    }
}

/// Options for one job; `None` means the queue's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobOptions {
    /// Run no earlier than this long after enqueue.
    pub delay: Option<Duration>,
    /// Run no earlier than this time, in milliseconds since the epoch (wins over `delay`).
    pub run_at_ms: Option<i64>,
    /// 0 (default) to 1000; higher runs first.
    pub priority: Option<u16>,
    /// 1 to 1000.
    pub max_attempts: Option<u32>,
    /// Retry delays.
    pub backoff: Option<Backoff>,
    /// A second enqueue with the same key within its TTL returns the first job's id.
    pub idempotency_key: Option<String>,
    /// How long the key is remembered (default 24 h).
    pub idempotency_ttl: Option<Duration>,
    /// How long the job stays in Redis once finished (default: the queue's retention).
    pub retention: Option<JobRetention>,
}

impl JobOptions {
    /// Checks the ranges, naming the field at fault.
    pub fn validate(&self) -> Result<()> {
        if let Some(d) = self.delay
            && d > MAX_DELAY
        {
            return invalid("delay must be at most one year");
        }
        if let Some(p) = self.priority
            && p > MAX_PRIORITY
        {
            return invalid("priority must be between 0 and 1000");
        }
        if let Some(m) = self.max_attempts
            && !(1..=MAX_ATTEMPTS).contains(&m)
        {
            return invalid("max_attempts must be between 1 and 1000");
        }
        if let Some(b) = &self.backoff {
            b.validate()?;
        }
        if let Some(k) = &self.idempotency_key
            && (k.is_empty()
                || k.len() > MAX_STORED_IDEMPOTENCY_KEY_LEN
                || k.chars().any(char::is_control))
        {
            return invalid("idempotency key must be 1 to 320 bytes with no control characters");
        }
        if let Some(t) = self.idempotency_ttl
            && (t.is_zero() || t > MAX_IDEMPOTENCY_TTL)
        {
            return invalid("idempotency ttl must be between 1 ms and 30 days");
        }
        if let Some(r) = &self.retention {
            r.validate()?;
        }
        Ok(())
    }

    /// The delay from now in milliseconds, given the current time in milliseconds.
    pub(crate) fn delay_ms(&self, now_ms: i64) -> Result<u64> {
        let ms = match (self.run_at_ms, self.delay) {
            (Some(at), _) => u64::try_from(at - now_ms).unwrap_or(0),
            (None, Some(d)) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            (None, None) => 0,
        };
        if ms > MAX_DELAY.as_millis() as u64 {
            return invalid("run_at must be within one year");
        }
        Ok(ms)
    }
}

fn invalid<T>(msg: &str) -> Result<T> {
    Err(QueueError::InvalidOptions(msg.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_grows_by_factor_and_caps() {
        let b = Backoff {
            kind: BackoffKind::Exponential,
            delay_ms: 100,
            factor: 3.0,
            max_delay_ms: 1000,
            jitter: 0.0,
        };
        assert_eq!(b.delay(1, 0.5), Duration::from_millis(100));
        assert_eq!(b.delay(2, 0.5), Duration::from_millis(300));
        assert_eq!(b.delay(3, 0.5), Duration::from_millis(900));
        assert_eq!(b.delay(4, 0.5), Duration::from_millis(1000));
        assert_eq!(b.delay(400, 0.5), Duration::from_millis(1000));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let b = Backoff::exponential(1000);
        assert_eq!(b.delay(1, 0.0), Duration::from_millis(1000));
        assert_eq!(b.delay(1, 1.0), Duration::from_millis(800));
        for i in 0..100 {
            let d = b.delay(2, f64::from(i) / 100.0).as_millis();
            assert!((1600..=2000).contains(&d), "{d}");
        }
    }

    #[test]
    fn fixed_is_fixed() {
        let b = Backoff::fixed(250);
        assert_eq!(b.delay(1, 0.3), b.delay(9, 0.9));
    }

    #[test]
    fn validation_names_the_field() {
        let bad = JobOptions {
            priority: Some(1001),
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("priority"));
        let bad = JobOptions {
            max_attempts: Some(0),
            ..Default::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("max_attempts")
        );
        let mut b = Backoff::exponential(10);
        b.jitter = 2.0;
        assert!(b.validate().unwrap_err().to_string().contains("jitter"));
        assert!(JobOptions::default().validate().is_ok());
    }

    #[test]
    fn backoff_json_shape() {
        let b: Backoff = serde_json::from_str(r#"{"type":"exponential","delay_ms":10}"#).unwrap();
        assert_eq!(b.factor, 2.0);
        assert!(serde_json::from_str::<Backoff>(r#"{"type":"linear","delay_ms":10}"#).is_err());
        assert!(
            serde_json::from_str::<Backoff>(r#"{"type":"fixed","delay_ms":10,"x":1}"#).is_err()
        );
    }
}
