//! The throughput each worker measured for the analysis loop when it started: what an
//! estimate rests on before any analysis has completed on this installation.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("analysis_calibrations")
                    .if_not_exists()
                    .col(string_len("worker", 128).primary_key())
                    .col(double("bytes_per_sec"))
                    .col(timestamp_with_time_zone("measured_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("analysis_calibrations").to_owned())
            .await
    }
}
