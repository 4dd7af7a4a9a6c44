//! A token bucket per API key, in Redis, so that every API process shares it.
//!
//! Each role has a rate and a burst (`DROVER_API_RATE_<ROLE>`, `DROVER_API_BURST_<ROLE>`).
//! One Lua script (`rate_limit.lua`) refills and takes a token atomically, using Redis's
//! clock. An empty bucket answers 429 with `Retry-After`, the whole seconds until a token
//! is back.
//!
//! When Redis cannot be reached the limiter lets requests through (fails open) and says
//! so in the log at most every few seconds: the operation then needs Redis itself and
//! answers 503 if it does, while one that does not (a job read from the database's
//! archive) still works.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicI64, Ordering};

use drover_queue::Redis;
use drover_queue::queue::now_ms;
use redis::Script;

use super::{Principal, Role};
use crate::config::RateLimit;
use crate::error::ApiError;

static TAKE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("rate_limit.lua")));

/// How often the "limiter cannot reach Redis" warning may be logged.
const WARN_EVERY_MS: i64 = 10_000;

/// The per-key token buckets.
pub struct RateLimiter {
    redis: Redis,
    namespace: String,
    submitter: RateLimit,
    admin: RateLimit,
    last_warned_ms: AtomicI64,
}

impl RateLimiter {
    /// Buckets in Redis namespace `namespace`.
    #[must_use]
    pub fn new(redis: Redis, namespace: &str, submitter: RateLimit, admin: RateLimit) -> Self {
        Self {
            redis,
            namespace: namespace.to_owned(),
            submitter,
            admin,
            last_warned_ms: AtomicI64::new(0),
        }
    }

    /// The Redis key of a key's bucket.
    #[must_use]
    pub fn bucket(&self, key_id: i64) -> String {
        format!("{}:ratelimit:{key_id}", self.namespace)
    }

    /// Takes a token for `p`, or answers 429.
    pub async fn check(&self, p: &Principal) -> Result<(), ApiError> {
        let limit = match p.role {
            Role::Submitter => self.submitter,
            Role::Admin => self.admin,
        };
        if !limit.is_enabled() {
            return Ok(());
        }
        let mut inv = TAKE.prepare_invoke();
        inv.key(self.bucket(p.key_id))
            .arg(limit.per_second)
            .arg(limit.burst);
        match self.redis.invoke::<(i64, i64)>(&inv).await {
            Ok((1, _)) => Ok(()),
            Ok((_, wait_ms)) => {
                metrics::counter!("drover_http_rate_limited_total", "role" => p.role.as_str())
                    .increment(1);
                let secs = u64::try_from(wait_ms).unwrap_or(0).div_ceil(1000).max(1);
                Err(ApiError::rate_limited(secs))
            }
            Err(e) if e.is_unavailable() => {
                let now = now_ms();
                let last = self.last_warned_ms.load(Ordering::Relaxed);
                if now - last >= WARN_EVERY_MS
                    && self
                        .last_warned_ms
                        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    tracing::warn!(error = %e, "rate limiter cannot reach Redis: letting requests through");
                }
                Ok(())
            }
            Err(e) => Err(ApiError::internal(e)),
        }
    }
}
