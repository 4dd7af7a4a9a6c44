//! What an analysis's time depends on besides the file's size: the cells it scores and
//! their bytes. Scoring costs several times what splitting the file does, so an
//! analysis of one short column takes a fraction of the time of one of every text
//! column over the same file. Runs, and a worker's start-up calibration, record what
//! they scored and what a cell and a byte of it cost (timed on a sample of rows); the
//! reading rate is then the rest of their time.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one column at a time.
        for (table, column) in [
            ("analysis_runs", big_integer_null("scored_cells")),
            ("analysis_runs", big_integer_null("scored_bytes")),
            ("analysis_runs", double_null("ns_per_cell")),
            ("analysis_runs", double_null("ns_per_scored_byte")),
            ("analysis_calibrations", double_null("read_bytes_per_sec")),
            ("analysis_calibrations", double_null("ns_per_cell")),
            ("analysis_calibrations", double_null("ns_per_scored_byte")),
        ] {
            manager
                .alter_table(Table::alter().table(table).add_column(column).to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in [
            ("analysis_runs", "scored_cells"),
            ("analysis_runs", "scored_bytes"),
            ("analysis_runs", "ns_per_cell"),
            ("analysis_runs", "ns_per_scored_byte"),
            ("analysis_calibrations", "read_bytes_per_sec"),
            ("analysis_calibrations", "ns_per_cell"),
            ("analysis_calibrations", "ns_per_scored_byte"),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
