//! A worker's start-up measurement of the analysis loop's throughput (bytes of CSV per
//! second), used for estimates until completed runs have recorded their own.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "analysis_calibrations")]
pub struct Model {
    /// The host name of the worker that measured (one row per machine, the latest).
    #[sea_orm(primary_key, auto_increment = false)]
    pub worker: String,
    pub bytes_per_sec: f64,
    pub measured_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
