//! An index on `job_history.finished_at`, so the cleanup job finds the rows past their
//! retention in batches without scanning the whole archive each time.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_job_history_finished_at")
                    .table("job_history")
                    .col("finished_at")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_job_history_finished_at")
                    .table("job_history")
                    .to_owned(),
            )
            .await
    }
}
