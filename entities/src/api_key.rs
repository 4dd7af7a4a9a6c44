//! An API key. Only the SHA-256 of the key is stored; its first characters are kept
//! so people can tell keys apart in listings.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    /// `submitter` or `admin`.
    pub role: String,
    /// Hex SHA-256 of the key.
    #[serde(skip)]
    #[sea_orm(unique)]
    pub key_hash: String,
    /// The key's first characters, for display.
    pub key_prefix: String,
    /// `env` (from `DROVER_API_KEYS`), `cli` (from `drover keys create`) or `dev` (the
    /// admin key `drover up` makes when there is none).
    pub source: String,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    /// The queues the key may use, comma-separated; none: every queue.
    pub queues: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
