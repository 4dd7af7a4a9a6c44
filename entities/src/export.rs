//! An export file, made by an `export` job.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "exports")]
pub struct Model {
    /// The export job's id (a ULID).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `job_history`, `aggregates` or `analysis_results`.
    pub source: String,
    /// `csv` or `jsonl`.
    pub format: String,
    pub gzip: bool,
    /// The filters of the payload, as JSON text.
    #[sea_orm(column_type = "Text")]
    pub filters: String,
    /// The file's bare name inside `<data dir>/exports/`: never a path, never from a
    /// request.
    pub file_name: String,
    /// The file's size.
    pub bytes: i64,
    /// Data rows written (the CSV header is not counted).
    pub rows: i64,
    /// Hex SHA-256 of the file's bytes (as stored, so compressed when gzip).
    pub sha256: String,
    /// The attempt that wrote the file.
    pub attempt: i32,
    pub created_at: DateTimeUtc,
    /// The cleanup job deletes the file and this row after this.
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
