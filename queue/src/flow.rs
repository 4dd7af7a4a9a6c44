//! Flow control across every worker of a queue: a global rate limit (a token bucket
//! in Redis), a global cap on active jobs, and a rate pause a handler can ask for.
//!
//! Each worker decides alone how many jobs it runs (its concurrency); these limits
//! hold for all of them together, on any number of machines, because the fetch
//! script enforces them where jobs are leased, by Redis's clock:
//!
//! - **rate limit** `limit` per `per`, with a burst of `burst`: a bucket of `burst`
//!   tokens refilled at `limit / per`; every lease takes a token. A fetch that finds
//!   no token leases nothing and answers how long until the next one is due, and the
//!   worker sleeps that long (no spinning);
//! - **`max_active`**: at most this many jobs of the queue active at once; a fetch at
//!   the cap leases nothing, and the next finished job wakes the waiting workers;
//! - **rate pause**: a handler that returns
//!   [`JobError::rate_limited`](crate::worker::JobError::rate_limited) holds back
//!   every start of the queue for the delay it names (BullMQ's `rateLimit(ms)`).
//!
//! The limits live in the queue's `flow` hash. Workers seed it from their
//! configuration at start; an admin changes it at run time (the API's
//! `PATCH /api/v1/queues/{queue}`), which wakes every worker so the change holds at
//! once, and which later configuration seeds do not overwrite.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use crate::error::{QueueError, Result};
use crate::queue::Queue;
use crate::scripts;

/// Most tokens a rate limit may refill per period.
pub const MAX_RATE_LIMIT: u64 = 10_000_000;
/// Largest burst.
pub const MAX_BURST: u64 = 10_000_000;
/// Shortest refill period: one millisecond.
pub const MIN_PERIOD: Duration = Duration::from_millis(1);
/// Longest refill period: one day. A longer one is almost surely a unit mistake.
pub const MAX_PERIOD: Duration = Duration::from_secs(24 * 3600);
/// Largest `max_active`.
pub const MAX_ACTIVE: u64 = 1_000_000;

/// A rate limit: `limit` starts per `per`, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    /// Tokens added per period.
    pub limit: u64,
    /// The refill period.
    #[serde(rename = "per_ms", serialize_with = "ser_ms")]
    pub per: Duration,
    /// Most tokens the bucket holds: jobs that may start at once after a quiet spell.
    pub burst: u64,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Why a limit was refused; the message says what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct LimitError {
    /// The field at fault: `rate_limit.limit`, `rate_limit.per_ms`, `rate_limit.burst`
    /// or `max_active`.
    pub field: &'static str,
    pub reason: String,
}

fn refuse(field: &'static str, reason: impl Into<String>) -> LimitError {
    LimitError {
        field,
        reason: reason.into(),
    }
}

impl RateLimit {
    /// A checked rate limit; `burst` defaults to `limit` (one period's worth).
    pub fn new(
        limit: i64,
        per_ms: i64,
        burst: Option<i64>,
    ) -> std::result::Result<Self, LimitError> {
        let max_rate = MAX_RATE_LIMIT;
        if limit < 1 {
            return Err(refuse(
                "rate_limit.limit",
                format!(
                    "must be at least 1 (a queue that should start nothing is paused, not limited to {limit})"
                ),
            ));
        }
        let limit = limit as u64;
        if limit > max_rate {
            return Err(refuse(
                "rate_limit.limit",
                format!("must be at most {max_rate} per period"),
            ));
        }
        let min = MIN_PERIOD.as_millis() as i64;
        let max = MAX_PERIOD.as_millis() as i64;
        if per_ms < min || per_ms > max {
            return Err(refuse(
                "rate_limit.per_ms",
                format!("must be between {min} ms and {max} ms (one day), not {per_ms}"),
            ));
        }
        let burst = burst.unwrap_or(limit as i64);
        if burst < 1 {
            return Err(refuse(
                "rate_limit.burst",
                format!(
                    "must be at least 1 (the bucket must hold one token for any job to start), not {burst}"
                ),
            ));
        }
        if burst as u64 > MAX_BURST {
            return Err(refuse(
                "rate_limit.burst",
                format!("must be at most {MAX_BURST}"),
            ));
        }
        Ok(Self {
            limit,
            per: Duration::from_millis(per_ms as u64),
            burst: burst as u64,
        })
    }

    /// Tokens per second.
    #[must_use]
    pub fn per_second(&self) -> f64 {
        self.limit as f64 * 1000.0 / self.per.as_millis().max(1) as f64
    }

    fn encode(&self) -> String {
        format!("{}:{}:{}", self.limit, self.per.as_millis(), self.burst)
    }
}

/// `N/PERIOD` with an optional `:BURST`: `5/s`, `60/min`, `3/s:5`, `100/250ms:20`,
/// `1000000/s`. A period is `ms`, `s`, `min` (or `m`) or `h`, with an optional count
/// before it (`10s`).
impl FromStr for RateLimit {
    type Err = LimitError;
    fn from_str(s: &str) -> std::result::Result<Self, LimitError> {
        let bad = || {
            refuse(
                "rate_limit",
                format!("{s:?} is not N/PERIOD[:BURST], e.g. 5/s, 60/min, 3/s:5 or 100/250ms:20"),
            )
        };
        let (rate, burst) = match s.split_once(':') {
            Some((r, b)) => (r, Some(b.trim().parse::<i64>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let (n, period) = rate.split_once('/').ok_or_else(bad)?;
        let n: i64 = n.trim().parse().map_err(|_| bad())?;
        let period = period.trim();
        let digits = period.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let count: i64 = if digits == 0 {
            1
        } else {
            period[..digits].parse().map_err(|_| bad())?
        };
        let unit_ms: i64 = match &period[digits..] {
            "ms" => 1,
            "s" => 1000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            _ => return Err(bad()),
        };
        RateLimit::new(n, count.saturating_mul(unit_ms), burst)
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}ms:{}",
            self.limit,
            self.per.as_millis(),
            self.burst
        )
    }
}

/// Checks a `max_active`.
pub fn check_max_active(n: i64) -> std::result::Result<u64, LimitError> {
    if n < 1 {
        return Err(refuse(
            "max_active",
            format!("must be at least 1 (to start nothing, pause the queue), not {n}"),
        ));
    }
    if n as u64 > MAX_ACTIVE {
        return Err(refuse(
            "max_active",
            format!("must be at most {MAX_ACTIVE}"),
        ));
    }
    Ok(n as u64)
}

/// The limits of a queue; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FlowLimits {
    pub rate_limit: Option<RateLimit>,
    pub max_active: Option<u64>,
}

/// A change of limits: `None` keeps a limit as it is, `Some(None)` removes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowPatch {
    pub rate_limit: Option<Option<RateLimit>>,
    pub max_active: Option<Option<u64>>,
}

/// Who set a queue's limits last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SetBy {
    /// Nobody: the queue has never had limits.
    Nobody,
    /// A worker's configuration, at its start.
    Config,
    /// An admin, at run time. Configuration no longer overwrites it.
    Api,
}

/// A queue's flow control at one instant, by Redis's clock.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowStatus {
    pub limits: FlowLimits,
    pub set_by: SetBy,
    /// Whole tokens in the bucket now (`None` without a rate limit).
    pub tokens_available: Option<u64>,
    /// The rate limit in starts per second (`None` without one).
    pub rate_per_second: Option<f64>,
    /// How long the handler-signalled rate pause still holds, in ms (0 when none).
    pub rate_paused_for_ms: u64,
    /// Waiting jobs that the tokens in the bucket cannot start now.
    pub waiting_for_token: u64,
    pub waiting: u64,
    pub active: u64,
    /// How long a job submitted now waits for the limiter (tokens and rate pause)
    /// before it may start, in ms. Worker capacity comes on top.
    pub expected_start_delay_ms: u64,
}

/// The limiter's delay for the `position`-th job in line (1 is the head), given
/// `level` (in 1/per_ms token) now: 0 while the bucket holds enough tokens, else the
/// time until it has refilled enough.
#[must_use]
pub fn limiter_delay_ms(rate: &RateLimit, level: u64, position: u64) -> u64 {
    let per = u64::try_from(rate.per.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    let need = position.saturating_mul(per);
    if level >= need {
        0
    } else {
        (need - level).div_ceil(rate.limit.max(1))
    }
}

impl Queue {
    /// The queue's flow control as it stands.
    pub async fn flow_status(&self) -> Result<FlowStatus> {
        let k = self.keys();
        let mut inv = scripts::FLOW_STATUS.prepare_invoke();
        inv.key(&k.flow).key(&k.wait).key(&k.active);
        let v: Vec<redis::Value> = self.redis().invoke(&inv).await?;
        if v.len() != 10 {
            return Err(QueueError::Protocol(format!(
                "flow status returned {} items",
                v.len()
            )));
        }
        let i = |n: usize| redis::from_redis_value_ref::<i64>(&v[n]).unwrap_or(0);
        let now = i(0);
        let u = |x: i64| u64::try_from(x).unwrap_or(0);
        let rate_limit = (i(1) > 0).then(|| RateLimit {
            limit: u(i(1)),
            per: Duration::from_millis(u(i(2))),
            burst: u(i(3)),
        });
        let level = u(i(4));
        let max_active = (i(5) > 0).then(|| u(i(5)));
        let paused_for = u(i(6) - now);
        let waiting = u(i(7));
        let active = u(i(8));
        let set_by = match redis::from_redis_value_ref::<String>(&v[9])
            .unwrap_or_default()
            .as_str()
        {
            "api" => SetBy::Api,
            "config" => SetBy::Config,
            _ => SetBy::Nobody,
        };
        let tokens =
            rate_limit.map(|r| level / u64::try_from(r.per.as_millis()).unwrap_or(1).max(1));
        let waiting_for_token = tokens.map_or(0, |t| waiting.saturating_sub(t));
        // The limiter's delay for a job behind everything waiting now: the tokens it
        // needs refill after the pause ends (the bucket does not fill during a pause
        // faster than it would otherwise, so the two add up at worst).
        let token_delay = rate_limit.map_or(0, |r| limiter_delay_ms(&r, level, waiting + 1));
        Ok(FlowStatus {
            limits: FlowLimits {
                rate_limit,
                max_active,
            },
            set_by,
            tokens_available: tokens,
            rate_per_second: rate_limit.map(|r| r.per_second()),
            rate_paused_for_ms: paused_for,
            waiting_for_token,
            waiting,
            active,
            expected_start_delay_ms: token_delay.max(paused_for),
        })
    }

    /// Changes the queue's limits at run time (an admin's change: configuration seeds
    /// no longer overwrite it), and wakes every worker of the queue.
    pub async fn set_flow_limits(&self, patch: FlowPatch) -> Result<()> {
        self.write_flow(patch, "api", false).await.map(|_| ())
    }

    /// Applies a worker's configured limits, unless an admin has set the queue's limits
    /// at run time. Returns whether they were written.
    pub async fn seed_flow_limits(&self, limits: FlowLimits) -> Result<bool> {
        let patch = FlowPatch {
            rate_limit: Some(limits.rate_limit),
            max_active: Some(limits.max_active),
        };
        self.write_flow(patch, "config", true).await
    }

    async fn write_flow(&self, patch: FlowPatch, by: &str, unless_api: bool) -> Result<bool> {
        let k = self.keys();
        let rate = match patch.rate_limit {
            None => "keep".to_owned(),
            Some(None) => "none".to_owned(),
            Some(Some(r)) => r.encode(),
        };
        let max_active = match patch.max_active {
            None => "keep".to_owned(),
            Some(None) => "none".to_owned(),
            Some(Some(n)) => n.to_string(),
        };
        let mut inv = scripts::FLOW_SET.prepare_invoke();
        inv.key(&k.flow)
            .key(&k.sleep)
            .key(&k.capwait)
            .arg(rate)
            .arg(max_active)
            .arg(by)
            .arg(if unless_api { "1" } else { "0" })
            .arg(self.name())
            .arg(&k.wake_channel);
        let written: i64 = self.redis().invoke(&inv).await?;
        Ok(written == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_parse_with_their_units() {
        let r: RateLimit = "5/s".parse().unwrap();
        assert_eq!((r.limit, r.per, r.burst), (5, Duration::from_secs(1), 5));
        let r: RateLimit = "3/s:5".parse().unwrap();
        assert_eq!((r.limit, r.burst), (3, 5));
        let r: RateLimit = "60/min".parse().unwrap();
        assert_eq!(r.per, Duration::from_secs(60));
        let r: RateLimit = "100/250ms:20".parse().unwrap();
        assert_eq!(
            (r.limit, r.per, r.burst),
            (100, Duration::from_millis(250), 20)
        );
        let r: RateLimit = "1000000/s".parse().unwrap();
        assert!((r.per_second() - 1e6).abs() < 1e-6);
        assert_eq!(
            "7/10s".parse::<RateLimit>().unwrap().per,
            Duration::from_secs(10)
        );
    }

    #[test]
    fn bad_rate_limits_say_which_part_is_wrong() {
        for (s, field) in [
            ("0/s", "rate_limit.limit"),
            ("-1/s", "rate_limit.limit"),
            ("5/s:0", "rate_limit.burst"),
            ("5/0s", "rate_limit.per_ms"),
            ("5/48h", "rate_limit.per_ms"),
            ("5", "rate_limit"),
            ("5/fortnight", "rate_limit"),
            ("x/s", "rate_limit"),
        ] {
            let e = s.parse::<RateLimit>().unwrap_err();
            assert_eq!(e.field, field, "{s}: {e}");
        }
        assert_eq!(check_max_active(0).unwrap_err().field, "max_active");
        assert_eq!(check_max_active(-3).unwrap_err().field, "max_active");
        assert_eq!(check_max_active(2).unwrap(), 2);
    }

    #[test]
    fn the_limiter_delay_counts_the_tokens_still_to_come() {
        let r = RateLimit::new(5, 1000, Some(5)).unwrap();
        // A full bucket (5 tokens = 5000 units) starts five at once…
        assert_eq!(limiter_delay_ms(&r, 5000, 5), 0);
        // …and the sixth waits one refill of 200 ms.
        assert_eq!(limiter_delay_ms(&r, 5000, 6), 200);
        // An empty bucket: the first waits 200 ms, the tenth two seconds.
        assert_eq!(limiter_delay_ms(&r, 0, 1), 200);
        assert_eq!(limiter_delay_ms(&r, 0, 10), 2000);
    }
}
