//! API keys in the database: made, listed, revoked, and synchronised with
//! `DROVER_API_KEYS`.
//!
//! Only a key's SHA-256 (hex) is stored, with its first few characters so that people
//! can tell keys apart in listings; a key is shown once, when it is made. Keys have a
//! `source`: `env` for those of `DROVER_API_KEYS` (the API adds them at start, and
//! revokes the `env` keys the variable no longer lists), `cli` for those of
//! `drover keys create`, `dev` for the one `drover up` makes when there is none.

use chrono::Utc;
use drover_entities::api_key;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set,
};
use sha2::{Digest, Sha256};

use drover_jobs::QueueName;

use super::Role;
use crate::config::{ConfiguredKey, MIN_KEY_LEN};

/// What can go wrong managing keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// No key has this id or prefix.
    #[error("no API key matches {0:?}")]
    NotFound(String),
    /// Several keys start with this prefix.
    #[error("{0:?} matches several API keys: use the id")]
    Ambiguous(String),
    /// The key had been revoked already.
    #[error("API key {0} is already revoked")]
    AlreadyRevoked(i64),
    /// A name that cannot be stored.
    #[error("a key name must be 1 to 100 characters")]
    BadName,
    /// A key scoped to no queue at all could do nothing.
    #[error("a scoped key needs at least one queue")]
    NoQueues,
}

/// Where keys come from.
pub mod source {
    /// `DROVER_API_KEYS`.
    pub const ENV: &str = "env";
    /// `drover keys create`.
    pub const CLI: &str = "cli";
    /// The development admin key `drover up` makes when there is no key at all.
    pub const DEV: &str = "dev";
}

/// Prefix of the keys Drover makes, so that a leaked one is easy to recognise.
pub const KEY_PREFIX: &str = "drv_";

/// The hex SHA-256 of a key: how it is stored and looked up.
#[must_use]
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new random key: `drv_` and 40 hex digits (160 random bits).
#[must_use]
pub fn generate_key() -> String {
    let bytes: [u8; 20] = rand::random();
    format!("{KEY_PREFIX}{}", hex::encode(bytes))
}

/// The start of a key that is shown in listings: at most 12 characters, and at most a
/// third of the key, so that it never gives away much of a short key.
#[must_use]
pub fn display_prefix(key: &str) -> String {
    let n = (key.chars().count() / 3).min(12);
    key.chars().take(n).collect()
}

/// Adds a key; returns its row and the key itself (to be shown once).
pub async fn create_key(
    db: &DatabaseConnection,
    name: &str,
    role: Role,
    source: &str,
) -> Result<(api_key::Model, String), KeyError> {
    create_scoped_key(db, name, role, None, source).await
}

/// Adds a key that may use only `queues` (every queue if `None`); returns its row and
/// the key itself (to be shown once).
pub async fn create_scoped_key(
    db: &DatabaseConnection,
    name: &str,
    role: Role,
    queues: Option<&[QueueName]>,
    source: &str,
) -> Result<(api_key::Model, String), KeyError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(KeyError::BadName);
    }
    if queues.is_some_and(<[QueueName]>::is_empty) {
        return Err(KeyError::NoQueues);
    }
    let key = generate_key();
    let model = insert(db, name, role, &key, queues, source).await?;
    Ok((model, key))
}

async fn insert(
    db: &DatabaseConnection,
    name: &str,
    role: Role,
    key: &str,
    queues: Option<&[QueueName]>,
    source: &str,
) -> Result<api_key::Model, KeyError> {
    let queues = queues.map(|qs| qs.iter().map(|q| q.as_str()).collect::<Vec<_>>().join(","));
    let row = api_key::ActiveModel {
        queues: Set(queues),
        name: Set(name.to_owned()),
        role: Set(role.as_str().to_owned()),
        key_hash: Set(hash_key(key)),
        key_prefix: Set(display_prefix(key)),
        source: Set(source.to_owned()),
        created_at: Set(Utc::now()),
        last_used_at: Set(None),
        revoked_at: Set(None),
        ..Default::default()
    };
    Ok(row.insert(db).await?)
}

/// Every key, revoked ones too, oldest first.
pub async fn list_keys(db: &DatabaseConnection) -> Result<Vec<api_key::Model>, KeyError> {
    Ok(api_key::Entity::find()
        .order_by_asc(api_key::Column::Id)
        .all(db)
        .await?)
}

/// How many keys work (are not revoked).
pub async fn count_active(db: &DatabaseConnection) -> Result<u64, KeyError> {
    Ok(api_key::Entity::find()
        .filter(api_key::Column::RevokedAt.is_null())
        .count(db)
        .await?)
}

/// How many keys work and are not of source `source` (in production, the `dev` key
/// does not count: it is refused).
pub async fn count_active_except(db: &DatabaseConnection, source: &str) -> Result<u64, KeyError> {
    Ok(api_key::Entity::find()
        .filter(api_key::Column::RevokedAt.is_null())
        .filter(api_key::Column::Source.ne(source))
        .count(db)
        .await?)
}

/// Revokes the key with this id, or the only key whose shown prefix starts with `which`.
pub async fn revoke_key(db: &DatabaseConnection, which: &str) -> Result<api_key::Model, KeyError> {
    let which = which.trim();
    let found = match which.parse::<i64>() {
        Ok(id) => api_key::Entity::find_by_id(id).one(db).await?,
        Err(_) if which.len() >= 4 => {
            let mut rows = api_key::Entity::find()
                .filter(api_key::Column::KeyPrefix.starts_with(which))
                .all(db)
                .await?;
            if rows.len() > 1 {
                return Err(KeyError::Ambiguous(which.to_owned()));
            }
            rows.pop()
        }
        Err(_) => None,
    };
    let key = found.ok_or_else(|| KeyError::NotFound(which.to_owned()))?;
    if key.revoked_at.is_some() {
        return Err(KeyError::AlreadyRevoked(key.id));
    }
    let mut row: api_key::ActiveModel = key.into();
    row.revoked_at = Set(Some(Utc::now()));
    Ok(row.update(db).await?)
}

/// What [`sync_env_keys`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub added: usize,
    /// Keys whose role changed in the variable.
    pub updated: usize,
    /// `env` keys the variable no longer lists.
    pub revoked: usize,
    /// Keys the variable lists that were revoked (with `drover keys revoke`): they stay
    /// revoked.
    pub still_revoked: usize,
}

/// Makes the `env` keys of the database match `DROVER_API_KEYS`: adds the new ones,
/// updates roles, revokes those no longer listed. A key revoked by hand stays revoked
/// even if the variable still lists it: revocation wins.
pub async fn sync_env_keys(
    db: &DatabaseConnection,
    configured: &[ConfiguredKey],
) -> Result<SyncReport, KeyError> {
    let mut report = SyncReport::default();
    let mut listed = Vec::with_capacity(configured.len());
    for k in configured {
        debug_assert!(k.key.len() >= MIN_KEY_LEN);
        let hash = hash_key(&k.key);
        listed.push(hash.clone());
        let existing = api_key::Entity::find()
            .filter(api_key::Column::KeyHash.eq(hash.as_str()))
            .one(db)
            .await?;
        match existing {
            None => {
                let name = format!("env:{}:{}", k.role, display_prefix(&k.key));
                insert(db, &name, k.role, &k.key, None, source::ENV).await?;
                report.added += 1;
            }
            Some(row) if row.revoked_at.is_some() => {
                report.still_revoked += 1;
            }
            Some(row) if row.role != k.role.as_str() => {
                let mut row: api_key::ActiveModel = row.into();
                row.role = Set(k.role.as_str().to_owned());
                row.update(db).await?;
                report.updated += 1;
            }
            Some(_) => {}
        }
    }
    let stale = api_key::Entity::find()
        .filter(api_key::Column::Source.eq(source::ENV))
        .filter(api_key::Column::RevokedAt.is_null())
        .filter(api_key::Column::KeyHash.is_not_in(listed))
        .all(db)
        .await?;
    for row in stale {
        let mut row: api_key::ActiveModel = row.into();
        row.revoked_at = Set(Some(Utc::now()));
        row.update(db).await?;
        report.revoked += 1;
    }
    Ok(report)
}

/// The key whose hash is `hash`, if there is one.
pub async fn find_by_hash(
    db: &DatabaseConnection,
    hash: &str,
) -> Result<Option<api_key::Model>, sea_orm::DbErr> {
    api_key::Entity::find()
        .filter(api_key::Column::KeyHash.eq(hash))
        .one(db)
        .await
}

/// Records that key `id` was used (now).
pub async fn touch(db: &DatabaseConnection, id: i64) -> Result<(), sea_orm::DbErr> {
    api_key::Entity::update_many()
        .col_expr(
            api_key::Column::LastUsedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(api_key::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hashes_stable() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), 44);
        assert_eq!(hash_key("abc").len(), 64);
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(display_prefix(&a).len(), 12);
        assert_eq!(display_prefix("0123456789abcdef"), "01234");
    }
}
