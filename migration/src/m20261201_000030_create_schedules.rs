//! Cron schedules: what fires when, into which queue, with which payload template.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("schedules")
                    .if_not_exists()
                    .col(string_len("name", 64).primary_key())
                    .col(string_len("cron", 255))
                    .col(string_len("timezone", 64))
                    .col(string_len("queue", 64))
                    .col(text("payload"))
                    .col(string_len("missed_fire", 8))
                    .col(integer("catch_up_limit"))
                    .col(string_len("overlap", 8))
                    .col(boolean("enabled"))
                    .col(timestamp_with_time_zone("anchor_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("schedules").to_owned())
            .await
    }
}
