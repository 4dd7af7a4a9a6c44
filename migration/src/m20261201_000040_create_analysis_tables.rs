//! Datasets and analyses: uploaded CSV files with their profiles, the record of each
//! analysis run, its checkpoints (so a retry resumes) and its per-column summaries.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("datasets")
                    .if_not_exists()
                    .col(string_len("id", 32).primary_key())
                    .col(string_len("name", 255))
                    .col(string_len("file_name", 64))
                    .col(big_integer("bytes"))
                    .col(string_len("sha256", 64))
                    .col(text("header"))
                    .col(big_integer("rows"))
                    .col(big_integer("malformed_rows"))
                    .col(text("chunk_offsets"))
                    .col(text("profile"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("analysis_runs")
                    .if_not_exists()
                    .col(string_len("job_id", 64).primary_key())
                    .col(string_len("dataset_id", 32))
                    .col(text("columns"))
                    .col(string_len("status", 16))
                    .col(integer("attempt"))
                    .col(big_integer("rows"))
                    .col(big_integer("malformed_rows"))
                    .col(text("malformed_examples"))
                    .col(big_integer("bytes_total"))
                    .col(big_integer("bytes_done"))
                    .col(text_null("results_file"))
                    .col(big_integer_null("results_bytes"))
                    .col(big_integer_null("resumed_from_offset"))
                    .col(big_integer_null("resumed_from_rows"))
                    .col(timestamp_with_time_zone_null("started_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .col(big_integer_null("elapsed_ms"))
                    .col(double_null("bytes_per_sec"))
                    .col(text_null("error"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_analysis_runs_dataset")
                    .table("analysis_runs")
                    .col("dataset_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("analysis_checkpoints")
                    .if_not_exists()
                    .col(string_len("job_id", 64).primary_key())
                    .col(integer("attempt"))
                    .col(text("results_file"))
                    .col(big_integer("byte_offset"))
                    .col(big_integer("rows"))
                    .col(big_integer("results_len"))
                    .col(text("state"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("analysis_summaries")
                    .if_not_exists()
                    .col(string_len("job_id", 64))
                    .col(string_len("column", 256))
                    .col(big_integer("rows"))
                    .col(big_integer("positive"))
                    .col(big_integer("neutral"))
                    .col(big_integer("negative"))
                    .col(double("mean_compound"))
                    .col(text("histogram"))
                    .col(timestamp_with_time_zone("created_at"))
                    .primary_key(Index::create().col("job_id").col("column"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "analysis_summaries",
            "analysis_checkpoints",
            "analysis_runs",
            "datasets",
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}
