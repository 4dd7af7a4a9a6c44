//! One aggregated value: a metric of a queue (or dataset) over an hour or a day.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "aggregates")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub bucket_start: DateTimeUtc,
    /// `hour` or `day`.
    pub granularity: String,
    /// `queue` or `dataset`: what `subject` names.
    pub scope: String,
    /// The queue's name or the dataset's id.
    pub subject: String,
    /// `completed`, `failed`, `retried`, `run_ms_sum`, …
    pub metric: String,
    pub value: f64,
    /// When the aggregation job last computed it.
    pub computed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
