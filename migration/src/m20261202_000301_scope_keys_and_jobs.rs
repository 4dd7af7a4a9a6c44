//! Tenants: an API key may be scoped to some queues (`api_keys.queues`), and an archived
//! job keeps the key that submitted it (`job_history.submitter_key_id`), so that a
//! submitter key reads only its own jobs, in Redis and in the archive alike.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table("api_keys")
                    .add_column(ColumnDef::new("queues").text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("job_history")
                    .add_column(ColumnDef::new("submitter_key_id").big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_job_history_submitter")
                    .table("job_history")
                    .col("submitter_key_id")
                    .col("finished_at")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_job_history_submitter")
                    .table("job_history")
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("job_history")
                    .drop_column("submitter_key_id")
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("api_keys")
                    .drop_column("queues")
                    .to_owned(),
            )
            .await
    }
}
