//! The sentiment summary of one column of one analysis (read by exports as
//! `analysis_results`).

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "analysis_summaries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub job_id: String,
    /// The scored column (`column` in the table; renamed here, where `Column` is
    /// sea-orm's own name).
    #[sea_orm(primary_key, auto_increment = false, column_name = "column")]
    pub column_name: String,
    pub rows: i64,
    pub positive: i64,
    pub neutral: i64,
    pub negative: i64,
    pub mean_compound: f64,
    /// JSON array of 20 counts, compound bins of 0.1 from -1 to 1.
    #[sea_orm(column_type = "Text")]
    pub histogram: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
