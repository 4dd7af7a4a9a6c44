//! Verified keys, remembered for a few seconds so that the hot path does not ask the
//! database on every request; and the guard that keeps bad keys from reaching it.
//!
//! An entry is trusted for `ttl` (`DROVER_API_KEY_CACHE_MS`, 5 s by default) after the
//! database confirmed it; then the next request with the key asks again. So a key
//! revoked with `drover keys revoke` stops working within `ttl` on every API process,
//! and a new key works at once. Each lookup also records when the key was last used,
//! so `last_used_at` is accurate to about `ttl`.
//!
//! Valid and unknown keys live in two separate least-recently-used maps: a flood of
//! made-up keys fills the small map of unknown keys and can never push a valid key
//! out of the other. A key neither map knows costs a token of the client address's
//! failure budget ([`super::failures`]) before the database is asked, and waits for
//! one of a few lookup slots, so a flood of distinct bad keys reaches the database a
//! bounded number of times and never takes the pool from the refreshes of valid
//! keys, which skip both.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use tokio::sync::Semaphore;

use super::failures::FailureLimiter;
use super::keys::{find_by_hash, hash_key, source, touch};
use super::lru::Lru;
use super::{Principal, Role};
use crate::error::ApiError;

/// Valid keys remembered; past it the least recently used valid key is forgotten
/// (and looked up again when it comes back).
const MAX_VALID: usize = 10_000;
/// Unknown or revoked keys remembered, so that a client retrying one bad key does not
/// ask the database each time.
const MAX_UNKNOWN: usize = 4_096;
/// Lookups of keys the process does not know that may run at once.
const UNKNOWN_LOOKUP_SLOTS: usize = 4;

/// The counter of database lookups, `drover_api_key_lookups_total`.
pub const LOOKUPS_METRIC: &str = "drover_api_key_lookups_total";

#[derive(Clone)]
struct Valid {
    principal: Principal,
    checked: Instant,
}

/// What became of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A valid key, of this principal.
    Valid(Principal),
    /// No such key, or revoked.
    Invalid,
    /// The client address spent its failure budget: retry after these seconds.
    Limited(u64),
}

/// Verifies keys against the database, through a short-lived cache.
pub struct KeyCache {
    db: DatabaseConnection,
    ttl: Duration,
    valid: Mutex<Lru<String, Valid>>,
    unknown: Mutex<Lru<String, Instant>>,
    failures: FailureLimiter,
    slots: Semaphore,
    lookups: AtomicU64,
    /// Refuse the development key `drover up` made (`source = dev`): set in production.
    refuse_dev: bool,
}

impl KeyCache {
    /// A cache over `db` that trusts an answer for `ttl`, and lets each client address
    /// fail `failures_per_minute` times a minute (0: no limit).
    #[must_use]
    pub fn new(db: DatabaseConnection, ttl: Duration, failures_per_minute: u32) -> Self {
        Self {
            db,
            ttl,
            valid: Mutex::new(Lru::new(MAX_VALID)),
            unknown: Mutex::new(Lru::new(MAX_UNKNOWN)),
            failures: FailureLimiter::new(failures_per_minute),
            slots: Semaphore::new(UNKNOWN_LOOKUP_SLOTS),
            lookups: AtomicU64::new(0),
            refuse_dev: false,
        }
    }

    /// Refuses the development key that `drover up` makes (`DROVER_ENV=prod`): its
    /// secret sat in a developer's terminal and `./data`, so it must not open a
    /// production deployment that shares the database.
    #[must_use]
    pub fn refusing_dev_keys(mut self, refuse: bool) -> Self {
        self.refuse_dev = refuse;
        self
    }

    /// How many times this cache asked the database.
    #[must_use]
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    /// What `key`, sent from `addr`, is.
    pub async fn verify(&self, key: &str, addr: Option<IpAddr>) -> Result<Verdict, ApiError> {
        self.verify_hash(hash_key(key), addr).await
    }

    /// What the key whose SHA-256 is `hash` is: how a dashboard session, which keeps
    /// the hash and never the key, is checked again on each request (so revoking the
    /// key ends its sessions within the cache's `ttl`).
    pub async fn verify_hash(
        &self,
        hash: String,
        addr: Option<IpAddr>,
    ) -> Result<Verdict, ApiError> {
        let caching = !self.ttl.is_zero();
        let mut known = false;
        if caching
            && let Ok(mut valid) = self.valid.lock()
            && let Some(v) = valid.get_mut(&hash)
        {
            if v.checked.elapsed() < self.ttl {
                return Ok(Verdict::Valid(v.principal.clone()));
            }
            known = true;
        }
        // A key this process has verified is refreshed at once; any other costs a
        // token of the address's failure budget, refunded if the key turns out valid.
        let _slot = if known {
            None
        } else {
            let remembered_bad = caching
                && self
                    .unknown
                    .lock()
                    .ok()
                    .and_then(|mut u| u.get_mut(&hash).map(|at| at.elapsed() < self.ttl))
                    .unwrap_or(false);
            if let Err(wait) = self.failures.take(addr) {
                return Ok(Verdict::Limited(wait));
            }
            if remembered_bad {
                return Ok(Verdict::Invalid);
            }
            Some(
                self.slots
                    .acquire()
                    .await
                    .map_err(|_| ApiError::internal("the key lookup slots are closed"))?,
            )
        };
        self.lookups.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(LOOKUPS_METRIC).increment(1);
        let row = match find_by_hash(&self.db, &hash).await {
            Ok(row) => row,
            Err(e) => {
                if !known {
                    self.failures.refund(addr);
                }
                return Err(e.into());
            }
        };
        let principal = match row {
            Some(row) if self.refuse_dev && row.source == source::DEV => {
                tracing::warn!(
                    key_id = row.id,
                    "the development key of `drover up` is refused with DROVER_ENV=prod"
                );
                None
            }
            Some(row) if row.revoked_at.is_none() => {
                let queues = row.queues.as_deref().map(super::parse_queues).transpose();
                match (row.role.parse::<Role>(), queues) {
                    (Ok(role), Ok(queues)) => Some(Principal {
                        key_id: row.id,
                        name: Arc::from(row.name.as_str()),
                        role,
                        queues,
                    }),
                    (Err(e), _) => {
                        tracing::error!(key_id = row.id, error = %e, "API key with an unknown role: refused");
                        None
                    }
                    (_, Err(e)) => {
                        tracing::error!(key_id = row.id, error = %e, "API key scoped to an unknown queue: refused");
                        None
                    }
                }
            }
            _ => None,
        };
        match principal {
            Some(p) => {
                if !known {
                    self.failures.refund(addr);
                }
                let db = self.db.clone();
                let id = p.key_id;
                tokio::spawn(async move {
                    if let Err(e) = touch(&db, id).await {
                        tracing::debug!(key_id = id, error = %e, "could not record the key's use");
                    }
                });
                if caching {
                    if let Ok(mut u) = self.unknown.lock() {
                        u.remove(&hash);
                    }
                    if let Ok(mut v) = self.valid.lock() {
                        v.insert(
                            hash,
                            Valid {
                                principal: p.clone(),
                                checked: Instant::now(),
                            },
                        );
                    }
                }
                Ok(Verdict::Valid(p))
            }
            None => {
                if caching {
                    if let Ok(mut v) = self.valid.lock() {
                        v.remove(&hash);
                    }
                    if let Ok(mut u) = self.unknown.lock() {
                        u.insert(hash, Instant::now());
                    }
                }
                Ok(Verdict::Invalid)
            }
        }
    }
}
