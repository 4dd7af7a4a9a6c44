//! Hourly and daily aggregates: one value per bucket, subject and metric.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("aggregates")
                    .if_not_exists()
                    .col(big_pk_auto("id"))
                    .col(timestamp_with_time_zone("bucket_start"))
                    // `hour` or `day`.
                    .col(string_len("granularity", 8))
                    // `queue` or `dataset`: what `subject` names.
                    .col(string_len("scope", 16))
                    .col(string_len("subject", 128))
                    .col(string_len("metric", 64))
                    .col(double("value"))
                    .col(timestamp_with_time_zone("computed_at"))
                    .to_owned(),
            )
            .await?;
        // The upsert's conflict target: a bucket computed again replaces its values.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("uq_aggregates_bucket_subject_metric")
                    .table("aggregates")
                    .col("granularity")
                    .col("bucket_start")
                    .col("scope")
                    .col("subject")
                    .col("metric")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_aggregates_bucket")
                    .table("aggregates")
                    .col("bucket_start")
                    .col("id")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("aggregates").to_owned())
            .await
    }
}
