//! Export files: one row per export job, naming the file under `<data dir>/exports/`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("exports")
                    .if_not_exists()
                    // The export job's id: one export per job, whatever its attempts.
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("source", 32))
                    .col(string_len("format", 16))
                    .col(boolean("gzip"))
                    .col(text("filters"))
                    // A bare file name inside the exports directory, never a path.
                    .col(string_len("file_name", 128))
                    .col(big_integer("bytes"))
                    .col(big_integer("rows"))
                    .col(string_len("sha256", 64))
                    .col(integer("attempt"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_exports_expires_at")
                    .table("exports")
                    .col("expires_at")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("exports").to_owned())
            .await
    }
}
