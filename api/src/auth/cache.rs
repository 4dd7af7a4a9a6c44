//! Verified keys, remembered for a few seconds so that the hot path does not ask the
//! database on every request.
//!
//! An entry is trusted for `ttl` (`DROVER_API_KEY_CACHE_MS`, 5 s by default) after the
//! database confirmed it; then the next request with the key asks again. So a key
//! revoked with `drover keys revoke` stops working within `ttl` on every API process,
//! and a new key works at once (unknown keys are remembered for the same time, so one
//! made right after a failed attempt with it may take up to `ttl`). Each lookup also
//! records when the key was last used, so `last_used_at` is accurate to about `ttl`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;

use super::keys::{find_by_hash, hash_key, touch};
use super::{Principal, Role};
use crate::error::ApiError;

/// Most entries kept; past it, expired entries are dropped, then everything.
const MAX_ENTRIES: usize = 10_000;

#[derive(Clone)]
struct Entry {
    /// `None`: no such key, or revoked.
    principal: Option<Principal>,
    checked: Instant,
}

/// Verifies keys against the database, through a short-lived cache.
pub struct KeyCache {
    db: DatabaseConnection,
    ttl: Duration,
    entries: RwLock<HashMap<String, Entry>>,
}

impl KeyCache {
    /// A cache over `db` that trusts an answer for `ttl`.
    #[must_use]
    pub fn new(db: DatabaseConnection, ttl: Duration) -> Self {
        Self {
            db,
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The key's principal; `None` if it is unknown or revoked.
    pub async fn verify(&self, key: &str) -> Result<Option<Principal>, ApiError> {
        let hash = hash_key(key);
        if let Some(hit) = self.cached(&hash) {
            return Ok(hit);
        }
        let row = find_by_hash(&self.db, &hash).await?;
        let principal = match row {
            Some(row) if row.revoked_at.is_none() => match row.role.parse::<Role>() {
                Ok(role) => Some(Principal {
                    key_id: row.id,
                    name: Arc::from(row.name.as_str()),
                    role,
                }),
                Err(e) => {
                    tracing::error!(key_id = row.id, error = %e, "API key with an unknown role: refused");
                    None
                }
            },
            _ => None,
        };
        if let Some(p) = &principal {
            let db = self.db.clone();
            let id = p.key_id;
            tokio::spawn(async move {
                if let Err(e) = touch(&db, id).await {
                    tracing::debug!(key_id = id, error = %e, "could not record the key's use");
                }
            });
        }
        self.remember(hash, principal.clone());
        Ok(principal)
    }

    fn cached(&self, hash: &str) -> Option<Option<Principal>> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.read().ok()?;
        let e = entries.get(hash)?;
        (e.checked.elapsed() < self.ttl).then(|| e.principal.clone())
    }

    fn remember(&self, hash: String, principal: Option<Principal>) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, e| e.checked.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            hash,
            Entry {
                principal,
                checked: Instant::now(),
            },
        );
    }
}
