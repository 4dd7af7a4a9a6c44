//! The part of an analysis run's time that does not grow with the file (looking up the
//! dataset and its checkpoint, opening the files, the rename), kept apart from the time spent
//! reading, so that an estimate from a small run does not charge a big one for it
//! once per calibration run's worth of bytes.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("analysis_runs")
                    .add_column(big_integer_null("overhead_ms"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("analysis_runs")
                    .drop_column("overhead_ms")
                    .to_owned(),
            )
            .await
    }
}
