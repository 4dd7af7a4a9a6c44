//! What the archive lacked to show an archived job as `GET /jobs/{id}` shows a live
//! one: when it was due, its options, its last progress message, the worker that ran
//! it; and indexes for listing the archive by finish time.
//!
//! One column per `ALTER TABLE`: SQLite takes one change at a time.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLE: &str = "job_history";

fn columns() -> Vec<ColumnDef> {
    vec![
        timestamp_with_time_zone_null("run_at"),
        // JSON: backoff, idempotency key, the job's own retention.
        text_null("options"),
        text_null("progress_message"),
        string_len_null("worker", 255),
    ]
}

const COLUMN_NAMES: [&str; 4] = ["run_at", "options", "progress_message", "worker"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for mut col in columns() {
            manager
                .alter_table(Table::alter().table(TABLE).add_column(&mut col).to_owned())
                .await?;
        }
        // The history listing: newest first, by (finished_at, id), optionally per
        // queue (the existing index on queue, finished_at) or per state.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_job_history_finished_id")
                    .table(TABLE)
                    .col("finished_at")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_job_history_state_finished")
                    .table(TABLE)
                    .col("state")
                    .col("finished_at")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in [
            "idx_job_history_state_finished",
            "idx_job_history_finished_id",
        ] {
            manager
                .drop_index(Index::drop().name(name).table(TABLE).to_owned())
                .await?;
        }
        for name in COLUMN_NAMES {
            manager
                .alter_table(Table::alter().table(TABLE).drop_column(name).to_owned())
                .await?;
        }
        Ok(())
    }
}
