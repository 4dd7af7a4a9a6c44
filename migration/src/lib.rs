//! Drover's database migrations, for SQLite (the embedded default) and PostgreSQL.
//!
//! Migrations are named `mYYYYMMDD_NNNNNN_<verb>_<noun>` and each has a working `down`.
//! A migration that has landed is never edited: change the schema with a new one.
//! `drover migrate` applies them; the API and the worker apply them at start unless
//! `DROVER_AUTO_MIGRATE=false`.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_create_api_keys;
mod m20261122_000002_create_job_history;
mod m20261201_000010_extend_job_history;
mod m20261201_000020_create_exports;
mod m20261201_000021_create_aggregates;
mod m20261201_000022_index_job_history_finished;
mod m20261201_000030_create_schedules;
mod m20261201_000031_create_schedule_fires;
mod m20261201_000032_seed_default_schedules;
mod m20261201_000040_create_analysis_tables;
mod m20261202_000301_scope_keys_and_jobs;
mod m20261202_000500_create_analysis_calibrations;
mod m20261202_000600_drop_job_history_finished_index;
mod m20261203_000700_add_analysis_overhead;
mod m20261204_000800_add_scoring_costs;

pub use m20261201_000032_seed_default_schedules::DEFAULTS as DEFAULT_SCHEDULES;

/// Every migration, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_api_keys::Migration),
            Box::new(m20261122_000002_create_job_history::Migration),
            Box::new(m20261201_000010_extend_job_history::Migration),
            Box::new(m20261201_000020_create_exports::Migration),
            Box::new(m20261201_000021_create_aggregates::Migration),
            Box::new(m20261201_000022_index_job_history_finished::Migration),
            Box::new(m20261201_000030_create_schedules::Migration),
            Box::new(m20261201_000031_create_schedule_fires::Migration),
            Box::new(m20261201_000032_seed_default_schedules::Migration),
            Box::new(m20261201_000040_create_analysis_tables::Migration),
            Box::new(m20261202_000301_scope_keys_and_jobs::Migration),
            Box::new(m20261202_000500_create_analysis_calibrations::Migration),
            Box::new(m20261202_000600_drop_job_history_finished_index::Migration),
            Box::new(m20261203_000700_add_analysis_overhead::Migration),
            Box::new(m20261204_000800_add_scoring_costs::Migration),
        ]
    }
}
