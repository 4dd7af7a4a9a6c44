//! Drops `idx_job_history_finished_at`: `idx_job_history_finished_id` (`finished_at`,
//! `id`) serves every query the single-column index did (the cleanup's "finished
//! before", the listings' time ranges), and each index is written on every archived
//! row. Index upkeep is about half of PostgreSQL's time in an archive insert, so one
//! fewer is a direct gain in archive throughput.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLE: &str = "job_history";
const INDEX: &str = "idx_job_history_finished_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .if_exists()
                    .name(INDEX)
                    .table(TABLE)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(INDEX)
                    .table(TABLE)
                    .col("finished_at")
                    .to_owned(),
            )
            .await
    }
}
