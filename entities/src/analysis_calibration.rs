//! A worker's start-up measurement of the analysis loop's throughput (bytes of CSV per
//! second, and how that splits between reading the file and scoring its cells), used
//! for estimates until completed runs have recorded their own.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "analysis_calibrations")]
pub struct Model {
    /// The host name of the worker that measured (one row per machine, the latest).
    #[sea_orm(primary_key, auto_increment = false)]
    pub worker: String,
    pub bytes_per_sec: f64,
    /// Bytes of CSV per second of the reading alone (the time not spent scoring).
    pub read_bytes_per_sec: Option<f64>,
    /// What scoring a cell cost, as nanoseconds per cell plus per byte of it.
    pub ns_per_cell: Option<f64>,
    pub ns_per_scored_byte: Option<f64>,
    pub measured_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
