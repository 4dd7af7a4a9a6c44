//! A budget of failed authentications per client address, in this process's memory.
//!
//! Each address has a bucket of `per_minute` tokens (`DROVER_API_AUTH_FAILURES`) that
//! refills at `per_minute` a minute. Looking up a key the process does not know costs
//! a token; a lookup that finds a valid key gives it back, so only failures spend the
//! budget. An empty bucket answers 429 with `Retry-After` before the database is
//! asked, so an address that sprays bad keys costs at most its budget in queries.
//! Keys the process has verified are checked from memory and never touch the budget:
//! a flood from an address does not lock out the valid keys used from it.
//!
//! The budget is per process, not shared through Redis: the point is to spare this
//! process's database pool, and a failure must not cost a Redis round trip either.
//! The address is the TCP peer's. Behind a reverse proxy every client shares the
//! proxy's address, so raise the budget there (or limit at the proxy); only keys this
//! process has not verified yet are affected.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use super::lru::Lru;

/// Addresses remembered; past it the least recently seen is forgotten (its budget
/// starts full again). An attacker with more addresses than this has other ways in.
const MAX_ADDRESSES: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The per-address budgets.
pub struct FailureLimiter {
    per_minute: u32,
    buckets: Mutex<Lru<IpAddr, Bucket>>,
}

impl FailureLimiter {
    /// A budget of `per_minute` failures a minute per address (0: no limit).
    #[must_use]
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Mutex::new(Lru::new(MAX_ADDRESSES)),
        }
    }

    /// Takes a token for `addr`: `Ok` to go ahead, or `Err(seconds)` until a token is
    /// back.
    pub fn take(&self, addr: Option<IpAddr>) -> Result<(), u64> {
        let (Some(addr), true) = (addr, self.per_minute > 0) else {
            return Ok(());
        };
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let cap = f64::from(self.per_minute);
        let per_sec = cap / 60.0;
        let now = Instant::now();
        let b = match buckets.get_mut(&addr) {
            Some(b) => b,
            None => {
                buckets.insert(
                    addr,
                    Bucket {
                        tokens: cap,
                        at: now,
                    },
                );
                buckets.get_mut(&addr).ok_or(1u64)?
            }
        };
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec).min(cap);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / per_sec).ceil().max(1.0) as u64)
        }
    }

    /// Gives back the token of a lookup that found a valid key.
    pub fn refund(&self, addr: Option<IpAddr>) {
        let (Some(addr), true) = (addr, self.per_minute > 0) else {
            return;
        };
        if let Ok(mut buckets) = self.buckets.lock()
            && let Some(b) = buckets.get_mut(&addr)
        {
            b.tokens = (b.tokens + 1.0).min(f64::from(self.per_minute));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_runs_out_and_others_do_not() {
        let l = FailureLimiter::new(3);
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        for _ in 0..3 {
            assert_eq!(l.take(a), Ok(()));
        }
        let wait = l.take(a).unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert_eq!(l.take(b), Ok(()), "budgets are per address");
        l.refund(a);
        assert_eq!(l.take(a), Ok(()), "a refunded token can be spent");
        assert!(l.take(a).is_err());
        let off = FailureLimiter::new(0);
        for _ in 0..100 {
            assert_eq!(off.take(a), Ok(()));
        }
    }
}
