//! The last checkpoint of an analysis: where a retry resumes.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "analysis_checkpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub job_id: String,
    /// The attempt that wrote it: an older attempt never overwrites a newer one's.
    pub attempt: i32,
    /// The attempt's own results file (under `<data_dir>/tmp/`), valid up to `results_len`.
    #[sea_orm(column_type = "Text")]
    pub results_file: String,
    /// Record-aligned offset in the dataset to read on from.
    pub byte_offset: i64,
    pub rows: i64,
    pub results_len: i64,
    /// JSON: partial summaries and malformed rows.
    #[sea_orm(column_type = "Text")]
    pub state: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
