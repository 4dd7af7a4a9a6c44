//! The analysis tables: datasets, runs, checkpoints and summaries (sea-orm, SQLite and
//! PostgreSQL alike).

use chrono::Utc;
use drover_entities::{
    analysis_calibration, analysis_checkpoint, analysis_run, analysis_summary, dataset,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};

use crate::calibrate::Calibration;
use crate::estimate::{CellCost, RunSpeed, Scored};
use crate::runner::RunState;
use crate::scan::Scan;
use crate::summary::ColumnSummary;

/// Statuses of a run that still may read its dataset.
pub const LIVE_STATUSES: [&str; 2] = ["queued", "running"];

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

/// Records an uploaded dataset.
pub async fn insert_dataset(
    db: &impl ConnectionTrait,
    id: &str,
    name: &str,
    file_name: &str,
    scan: &Scan,
) -> Result<dataset::Model, DbErr> {
    dataset::ActiveModel {
        id: Set(id.to_owned()),
        name: Set(name.to_owned()),
        file_name: Set(file_name.to_owned()),
        bytes: Set(scan.bytes as i64),
        sha256: Set(scan.sha256.clone()),
        header: Set(json(&scan.header)),
        rows: Set(scan.rows as i64),
        malformed_rows: Set(scan.malformed_rows as i64),
        chunk_offsets: Set(json(&scan.chunk_offsets)),
        profile: Set(json(&scan.profile)),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await
}

pub async fn get_dataset(
    db: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<dataset::Model>, DbErr> {
    dataset::Entity::find_by_id(id.to_owned()).one(db).await
}

/// Datasets by id (ULIDs: oldest first), after the cursor.
pub async fn list_datasets(
    db: &impl ConnectionTrait,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<dataset::Model>, DbErr> {
    let mut q = dataset::Entity::find().order_by_asc(dataset::Column::Id);
    if let Some(a) = after {
        q = q.filter(dataset::Column::Id.gt(a));
    }
    q.limit(limit).all(db).await
}

pub async fn delete_dataset(db: &impl ConnectionTrait, id: &str) -> Result<u64, DbErr> {
    Ok(dataset::Entity::delete_by_id(id.to_owned())
        .exec(db)
        .await?
        .rows_affected)
}

/// Runs of the dataset that are queued or running.
pub async fn live_runs(
    db: &impl ConnectionTrait,
    dataset_id: &str,
) -> Result<Vec<analysis_run::Model>, DbErr> {
    analysis_run::Entity::find()
        .filter(analysis_run::Column::DatasetId.eq(dataset_id))
        .filter(analysis_run::Column::Status.is_in(LIVE_STATUSES))
        .all(db)
        .await
}

pub async fn get_run(
    db: &impl ConnectionTrait,
    job_id: &str,
) -> Result<Option<analysis_run::Model>, DbErr> {
    analysis_run::Entity::find_by_id(job_id.to_owned())
        .one(db)
        .await
}

/// Records a submitted analysis (the API does it after the enqueue; the worker
/// creates it too if it runs first). Never overwrites.
pub async fn record_run(
    db: &impl ConnectionTrait,
    job_id: &str,
    dataset_id: &str,
    columns: &[String],
    bytes_total: i64,
) -> Result<(), DbErr> {
    let am = analysis_run::ActiveModel {
        job_id: Set(job_id.to_owned()),
        dataset_id: Set(dataset_id.to_owned()),
        columns: Set(json(&columns)),
        status: Set("queued".to_owned()),
        attempt: Set(0),
        rows: Set(0),
        malformed_rows: Set(0),
        malformed_examples: Set("[]".to_owned()),
        bytes_total: Set(bytes_total),
        bytes_done: Set(0),
        results_file: Set(None),
        results_bytes: Set(None),
        resumed_from_offset: Set(None),
        resumed_from_rows: Set(None),
        started_at: Set(None),
        finished_at: Set(None),
        elapsed_ms: Set(None),
        bytes_per_sec: Set(None),
        overhead_ms: Set(None),
        scored_cells: Set(None),
        scored_bytes: Set(None),
        ns_per_cell: Set(None),
        ns_per_scored_byte: Set(None),
        error: Set(None),
        created_at: Set(Utc::now()),
    };
    analysis_run::Entity::insert(am)
        .on_conflict_do_nothing_on([analysis_run::Column::JobId])
        .exec(db)
        .await?;
    Ok(())
}

/// Marks the run started by `attempt`, with the checkpoint it resumed from.
pub async fn start_run(
    db: &impl ConnectionTrait,
    job_id: &str,
    attempt: i32,
    resumed: Option<(u64, u64)>,
) -> Result<(), DbErr> {
    analysis_run::Entity::update_many()
        .col_expr(analysis_run::Column::Status, Expr::value("running"))
        .col_expr(analysis_run::Column::Attempt, Expr::value(attempt))
        .col_expr(
            analysis_run::Column::ResumedFromOffset,
            Expr::value(resumed.map(|r| r.0 as i64)),
        )
        .col_expr(
            analysis_run::Column::ResumedFromRows,
            Expr::value(resumed.map(|r| r.1 as i64)),
        )
        .col_expr(analysis_run::Column::StartedAt, Expr::value(Utc::now()))
        .filter(analysis_run::Column::JobId.eq(job_id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn load_checkpoint(
    db: &impl ConnectionTrait,
    job_id: &str,
) -> Result<Option<(analysis_checkpoint::Model, RunState)>, DbErr> {
    let Some(cp) = analysis_checkpoint::Entity::find_by_id(job_id.to_owned())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let state = serde_json::from_str(&cp.state)
        .map_err(|e| DbErr::Custom(format!("checkpoint of {job_id}: {e}")))?;
    Ok(Some((cp, state)))
}

/// Saves `state` as the checkpoint of `attempt`. Returns false when a later attempt
/// has written one: this attempt has been superseded and must stop.
pub async fn save_checkpoint(
    db: &impl ConnectionTrait,
    job_id: &str,
    attempt: i32,
    results_file: &str,
    state: &RunState,
) -> Result<bool, DbErr> {
    let now = Utc::now();
    let updated = analysis_checkpoint::Entity::update_many()
        .col_expr(analysis_checkpoint::Column::Attempt, Expr::value(attempt))
        .col_expr(
            analysis_checkpoint::Column::ResultsFile,
            Expr::value(results_file),
        )
        .col_expr(
            analysis_checkpoint::Column::ByteOffset,
            Expr::value(state.offset as i64),
        )
        .col_expr(
            analysis_checkpoint::Column::Rows,
            Expr::value(state.rows as i64),
        )
        .col_expr(
            analysis_checkpoint::Column::ResultsLen,
            Expr::value(state.results_len as i64),
        )
        .col_expr(analysis_checkpoint::Column::State, Expr::value(json(state)))
        .col_expr(analysis_checkpoint::Column::UpdatedAt, Expr::value(now))
        .filter(analysis_checkpoint::Column::JobId.eq(job_id))
        .filter(analysis_checkpoint::Column::Attempt.lte(attempt))
        .exec(db)
        .await?
        .rows_affected;
    if updated > 0 {
        return Ok(true);
    }
    let am = analysis_checkpoint::ActiveModel {
        job_id: Set(job_id.to_owned()),
        attempt: Set(attempt),
        results_file: Set(results_file.to_owned()),
        byte_offset: Set(state.offset as i64),
        rows: Set(state.rows as i64),
        results_len: Set(state.results_len as i64),
        state: Set(json(state)),
        updated_at: Set(now),
    };
    let inserted = analysis_checkpoint::Entity::insert(am)
        .on_conflict_do_nothing_on([analysis_checkpoint::Column::JobId])
        .exec(db)
        .await?;
    Ok(matches!(inserted, sea_orm::TryInsertResult::Inserted(_)))
}

/// What a finished run records.
pub struct Finished<'a> {
    pub job_id: &'a str,
    pub attempt: i32,
    pub state: &'a RunState,
    pub results_file: &'a str,
    pub bytes_done: u64,
    pub elapsed_ms: i64,
    pub bytes_per_sec: f64,
    /// The part of `elapsed_ms` outside the reading loop.
    pub overhead_ms: i64,
    /// Cells this attempt scored, their bytes, and what a cell and a byte cost
    /// (`None` if it timed too few cells to say).
    pub scored_cells: u64,
    pub scored_bytes: u64,
    pub cost: Option<CellCost>,
}

/// Writes the summaries and completes the run, in one transaction; drops the
/// checkpoint.
pub async fn finish_run(db: &DatabaseConnection, f: Finished<'_>) -> Result<(), DbErr> {
    let tx = db.begin().await?;
    analysis_summary::Entity::delete_many()
        .filter(analysis_summary::Column::JobId.eq(f.job_id))
        .exec(&tx)
        .await?;
    let now = Utc::now();
    for s in &f.state.summaries {
        summary_model(f.job_id, s, now).insert(&tx).await?;
    }
    analysis_run::Entity::update_many()
        .col_expr(analysis_run::Column::Status, Expr::value("completed"))
        .col_expr(analysis_run::Column::Attempt, Expr::value(f.attempt))
        .col_expr(analysis_run::Column::Rows, Expr::value(f.state.rows as i64))
        .col_expr(
            analysis_run::Column::MalformedRows,
            Expr::value(f.state.malformed as i64),
        )
        .col_expr(
            analysis_run::Column::MalformedExamples,
            Expr::value(json(&f.state.examples)),
        )
        .col_expr(
            analysis_run::Column::BytesDone,
            Expr::value(f.bytes_done as i64),
        )
        .col_expr(
            analysis_run::Column::ResultsFile,
            Expr::value(f.results_file),
        )
        .col_expr(
            analysis_run::Column::ResultsBytes,
            Expr::value(f.state.results_len as i64),
        )
        .col_expr(analysis_run::Column::FinishedAt, Expr::value(now))
        .col_expr(analysis_run::Column::ElapsedMs, Expr::value(f.elapsed_ms))
        .col_expr(
            analysis_run::Column::BytesPerSec,
            Expr::value(f.bytes_per_sec),
        )
        .col_expr(analysis_run::Column::OverheadMs, Expr::value(f.overhead_ms))
        .col_expr(
            analysis_run::Column::ScoredCells,
            Expr::value(i64::try_from(f.scored_cells).unwrap_or(i64::MAX)),
        )
        .col_expr(
            analysis_run::Column::ScoredBytes,
            Expr::value(i64::try_from(f.scored_bytes).unwrap_or(i64::MAX)),
        )
        .col_expr(
            analysis_run::Column::NsPerCell,
            Expr::value(f.cost.map(|c| c.ns_per_cell)),
        )
        .col_expr(
            analysis_run::Column::NsPerScoredByte,
            Expr::value(f.cost.map(|c| c.ns_per_byte)),
        )
        .filter(analysis_run::Column::JobId.eq(f.job_id))
        .exec(&tx)
        .await?;
    analysis_checkpoint::Entity::delete_by_id(f.job_id.to_owned())
        .exec(&tx)
        .await?;
    tx.commit().await
}

fn summary_model(
    job_id: &str,
    s: &ColumnSummary,
    now: chrono::DateTime<Utc>,
) -> analysis_summary::ActiveModel {
    analysis_summary::ActiveModel {
        job_id: Set(job_id.to_owned()),
        column_name: Set(s.column.clone()),
        rows: Set(s.rows as i64),
        positive: Set(s.positive as i64),
        neutral: Set(s.neutral as i64),
        negative: Set(s.negative as i64),
        mean_compound: Set(s.mean_compound()),
        histogram: Set(json(&s.histogram)),
        created_at: Set(now),
    }
}

/// Marks the run failed for good.
pub async fn fail_run(db: &impl ConnectionTrait, job_id: &str, error: &str) -> Result<(), DbErr> {
    analysis_run::Entity::update_many()
        .col_expr(analysis_run::Column::Status, Expr::value("failed"))
        .col_expr(analysis_run::Column::Error, Expr::value(error))
        .col_expr(analysis_run::Column::FinishedAt, Expr::value(Utc::now()))
        .filter(analysis_run::Column::JobId.eq(job_id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn summaries(
    db: &impl ConnectionTrait,
    job_id: &str,
) -> Result<Vec<analysis_summary::Model>, DbErr> {
    analysis_summary::Entity::find()
        .filter(analysis_summary::Column::JobId.eq(job_id))
        .all(db)
        .await
}

/// How fast the most recent completed runs went (what estimates rest on), newest
/// first.
pub async fn recent_speeds(db: &impl ConnectionTrait, n: u64) -> Result<Vec<RunSpeed>, DbErr> {
    Ok(analysis_run::Entity::find()
        .filter(analysis_run::Column::Status.eq("completed"))
        .filter(analysis_run::Column::BytesPerSec.is_not_null())
        .filter(analysis_run::Column::ElapsedMs.is_not_null())
        .order_by_desc(analysis_run::Column::FinishedAt)
        .limit(n)
        .all(db)
        .await?
        .into_iter()
        .filter_map(|r| {
            // Runs recorded before runs timed their cells, or too small to time two,
            // have no cost: they still count, with every byte alike.
            let scored = (|| {
                Some(Scored {
                    cells: u64::try_from(r.scored_cells?).ok()?,
                    bytes: u64::try_from(r.scored_bytes?).ok()?,
                    cost: CellCost::from_columns(r.ns_per_cell, r.ns_per_scored_byte)?,
                })
            })();
            Some(RunSpeed::new(
                r.bytes_per_sec?,
                r.elapsed_ms? as f64 / 1000.0,
                r.overhead_ms.unwrap_or(0) as f64 / 1000.0,
                scored,
            ))
        })
        .collect())
}

/// Records `worker`'s start-up calibration (replacing its previous one).
pub async fn save_calibration(
    db: &impl ConnectionTrait,
    worker: &str,
    c: &Calibration,
) -> Result<(), DbErr> {
    use sea_orm::sea_query::OnConflict;
    let am = analysis_calibration::ActiveModel {
        worker: Set(worker.to_owned()),
        bytes_per_sec: Set(c.bytes_per_sec),
        read_bytes_per_sec: Set(c.split.map(|(read, _)| read)),
        ns_per_cell: Set(c.split.map(|(_, cost)| cost.ns_per_cell)),
        ns_per_scored_byte: Set(c.split.map(|(_, cost)| cost.ns_per_byte)),
        measured_at: Set(Utc::now()),
    };
    analysis_calibration::Entity::insert(am)
        .on_conflict(
            OnConflict::column(analysis_calibration::Column::Worker)
                .update_columns([
                    analysis_calibration::Column::BytesPerSec,
                    analysis_calibration::Column::ReadBytesPerSec,
                    analysis_calibration::Column::NsPerCell,
                    analysis_calibration::Column::NsPerScoredByte,
                    analysis_calibration::Column::MeasuredAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// The most recent start-up calibration of any worker.
pub async fn latest_calibration(db: &impl ConnectionTrait) -> Result<Option<Calibration>, DbErr> {
    Ok(analysis_calibration::Entity::find()
        .order_by_desc(analysis_calibration::Column::MeasuredAt)
        .one(db)
        .await?
        .map(|c| Calibration {
            bytes_per_sec: c.bytes_per_sec,
            split: c
                .read_bytes_per_sec
                .zip(CellCost::from_columns(c.ns_per_cell, c.ns_per_scored_byte)),
        }))
}
