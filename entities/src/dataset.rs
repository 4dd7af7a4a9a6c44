//! An uploaded CSV dataset and what its upload learned of it.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "datasets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The name the uploader gave: shown, never used as a path.
    pub name: String,
    /// The file's name under `<data_dir>/datasets/` (derived from the id only).
    pub file_name: String,
    pub bytes: i64,
    pub sha256: String,
    /// JSON array of the column names.
    #[sea_orm(column_type = "Text")]
    pub header: String,
    /// Data rows, malformed ones included.
    pub rows: i64,
    pub malformed_rows: i64,
    /// JSON array of record-aligned byte offsets, one per chunk.
    #[sea_orm(column_type = "Text")]
    pub chunk_offsets: String,
    /// JSON array of per-column profiles.
    #[sea_orm(column_type = "Text")]
    pub profile: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
