//! The archive of finished jobs, moved out of Redis by the cleanup job.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("job_history")
                    .if_not_exists()
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("queue", 64))
                    .col(string_len("state", 16))
                    .col(text("payload"))
                    .col(text_null("result"))
                    .col(text("errors"))
                    .col(text_null("failed_reason"))
                    .col(integer("attempts"))
                    .col(integer("max_attempts"))
                    .col(integer("priority"))
                    .col(string_len_null("request_id", 128))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("started_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .col(timestamp_with_time_zone("archived_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_job_history_queue_finished")
                    .table("job_history")
                    .col("queue")
                    .col("finished_at")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("job_history").to_owned())
            .await
    }
}
