//! One row per fire of a schedule: enqueued, pending (claimed, not yet enqueued) or
//! skipped with the reason. `(schedule_name, fire_key)` is unique, so one scheduled
//! time is decided once, whichever scheduler got there first.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("schedule_fires")
                    .if_not_exists()
                    .col(string_len("id", 26).primary_key())
                    .col(string_len("schedule_name", 64))
                    .col(string_len("fire_key", 64))
                    .col(timestamp_with_time_zone("scheduled_at"))
                    .col(boolean("manual"))
                    .col(string_len("status", 16))
                    .col(text_null("reason"))
                    .col(string_len("queue", 64))
                    .col(text_null("payload"))
                    .col(string_len_null("job_id", 64))
                    .col(timestamp_with_time_zone_null("enqueued_at"))
                    .col(timestamp_with_time_zone("recorded_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_schedule_fires_key")
                    .table("schedule_fires")
                    .col("schedule_name")
                    .col("fire_key")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_schedule_fires_time")
                    .table("schedule_fires")
                    .col("schedule_name")
                    .col("scheduled_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_schedule_fires_status")
                    .table("schedule_fires")
                    .col("status")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("schedule_fires").to_owned())
            .await
    }
}
