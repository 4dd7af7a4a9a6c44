//! One analysis job: what it reads, how far it got, and how it ended.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "analysis_runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub job_id: String,
    pub dataset_id: String,
    /// JSON array of the scored column names.
    #[sea_orm(column_type = "Text")]
    pub columns: String,
    /// `queued`, `running`, `completed` or `failed`.
    pub status: String,
    /// The attempt that last wrote this row.
    pub attempt: i32,
    pub rows: i64,
    pub malformed_rows: i64,
    /// JSON array of `{row, reason}`, the first 100.
    #[sea_orm(column_type = "Text")]
    pub malformed_examples: String,
    pub bytes_total: i64,
    pub bytes_done: i64,
    /// The results file's name under `<data_dir>/analysis/` once complete.
    #[sea_orm(column_type = "Text", nullable)]
    pub results_file: Option<String>,
    pub results_bytes: Option<i64>,
    /// The checkpoint the last attempt resumed from, if any.
    pub resumed_from_offset: Option<i64>,
    pub resumed_from_rows: Option<i64>,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    /// Time spent by the attempts that did the work, summed.
    pub elapsed_ms: Option<i64>,
    /// Bytes of CSV per second of the last attempt, over its whole time.
    pub bytes_per_sec: Option<f64>,
    /// The part of the last attempt's time outside its reading loop (setup, the
    /// rename): what does not grow with the file. Estimates add it once and
    /// divide the bytes by the reading loop's own rate.
    pub overhead_ms: Option<i64>,
    /// Cells the last attempt scored, and their bytes: estimates weigh them apart from
    /// the file's bytes (scoring costs several times what reading does).
    pub scored_cells: Option<i64>,
    pub scored_bytes: Option<i64>,
    /// What scoring a cell cost, as nanoseconds per cell plus per byte of it (fitted
    /// on the attempt's timed rows).
    pub ns_per_cell: Option<f64>,
    pub ns_per_scored_byte: Option<f64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
