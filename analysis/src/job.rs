//! One attempt of an analysis, from start to checkpoint to finish: the code the
//! worker's thin handler calls, with the database, the data dir and a lease token.
//!
//! Files: the attempt writes `<data_dir>/tmp/analysis.<job_id>.<attempt>.part`, its
//! own file. A retry copies the checkpointed prefix of the previous attempt's file
//! into its own and reads on from the checkpointed offset. The complete file is
//! renamed to `<data_dir>/analysis/<job_id>.results.csv`. Before every write that
//! others can see (a checkpoint, the rename, the summaries) the attempt checks its
//! lease, and a checkpoint row written by a later attempt makes it stop too.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sea_orm::{DatabaseConnection, DbErr};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::runner::{RunState, Runner, Selection, start_results};
use crate::store;

/// How often to checkpoint and report.
#[derive(Debug, Clone, Copy)]
pub struct RunConfig {
    /// Checkpoint after this many rows…
    pub checkpoint_rows: u64,
    /// …or this much time, whichever comes first.
    pub checkpoint_every: Duration,
    /// Least time between two progress reports.
    pub progress_every: Duration,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            checkpoint_rows: 200_000,
            checkpoint_every: Duration::from_secs(5),
            progress_every: Duration::from_secs(1),
        }
    }
}

/// Why an attempt did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The payload cannot succeed (unknown dataset or column): do not retry.
    #[error("{0}")]
    Permanent(String),
    /// Worth another attempt (I/O, database).
    #[error("{0}")]
    Retryable(String),
    /// The lease is gone: another attempt owns the job now.
    #[error("the lease on the job was lost; stopped before writing again")]
    LeaseLost,
}

impl From<DbErr> for RunError {
    fn from(e: DbErr) -> Self {
        Self::Retryable(format!("database: {e}"))
    }
}

impl From<std::io::Error> for RunError {
    fn from(e: std::io::Error) -> Self {
        Self::Retryable(format!("file: {e}"))
    }
}

/// The job to run.
pub struct JobSpec<'a> {
    pub job_id: &'a str,
    pub attempt: u32,
    pub dataset_id: &'a str,
    pub columns: &'a [String],
}

/// Where the complete results of `job_id` live.
#[must_use]
pub fn results_path(data_dir: &Path, job_id: &str) -> PathBuf {
    data_dir
        .join("analysis")
        .join(format!("{job_id}.results.csv"))
}

fn part_path(data_dir: &Path, job_id: &str, attempt: u32) -> PathBuf {
    data_dir
        .join("tmp")
        .join(format!("analysis.{job_id}.{attempt}.part"))
}

/// Runs (or resumes) the analysis. `progress(percent, message, data)` is called at
/// most every `progress_every`. Returns the job's summary.
pub async fn run(
    db: &DatabaseConnection,
    data_dir: &Path,
    spec: JobSpec<'_>,
    cfg: RunConfig,
    lease_lost: &CancellationToken,
    mut progress: impl FnMut(u8, String, Value),
) -> Result<Value, RunError> {
    let started = Instant::now();
    let job_id = spec.job_id;
    let attempt = i32::try_from(spec.attempt).unwrap_or(i32::MAX);
    let ds = store::get_dataset(db, spec.dataset_id)
        .await?
        .ok_or_else(|| {
            RunError::Permanent(format!(
                "dataset {:?} does not exist (it may have been deleted)",
                spec.dataset_id
            ))
        })?;
    let header: Vec<String> = serde_json::from_str(&ds.header)
        .map_err(|e| RunError::Permanent(format!("dataset header: {e}")))?;
    let offsets: Vec<u64> = serde_json::from_str(&ds.chunk_offsets)
        .map_err(|e| RunError::Permanent(format!("dataset offsets: {e}")))?;
    let sel = Selection::new(&header, spec.columns)
        .map_err(|c| RunError::Permanent(format!("dataset {:?} has no column {c:?}", ds.id)))?;
    let dataset_path = data_dir.join("datasets").join(&ds.file_name);
    if !dataset_path.exists() {
        return Err(RunError::Permanent(format!(
            "the file of dataset {:?} is gone",
            ds.id
        )));
    }
    let data_start = offsets.first().copied().unwrap_or(ds.bytes as u64);
    let total = (ds.bytes as u64).saturating_sub(data_start).max(1);

    store::record_run(db, job_id, &ds.id, spec.columns, ds.bytes).await?;
    std::fs::create_dir_all(data_dir.join("tmp"))?;
    std::fs::create_dir_all(data_dir.join("analysis"))?;
    let part = part_path(data_dir, job_id, spec.attempt);
    let checkpoint = store::load_checkpoint(db, job_id).await?;
    let (state, file, resumed) = match checkpoint {
        Some((cp, state)) if cp.attempt < attempt => {
            let prev = PathBuf::from(&cp.results_file);
            match start_results(&part, Some((&prev, state.results_len))) {
                Ok(f) => {
                    let from = (state.offset, state.rows);
                    (state, f, Some(from))
                }
                Err(e) => {
                    tracing::warn!(job_id, error = %e, "checkpointed results unreadable; starting over");
                    (
                        RunState::fresh(data_start, spec.columns),
                        start_results(&part, None)?,
                        None,
                    )
                }
            }
        }
        Some(_) => return Err(RunError::LeaseLost),
        None => (
            RunState::fresh(data_start, spec.columns),
            start_results(&part, None)?,
            None,
        ),
    };
    store::start_run(db, job_id, attempt, resumed).await?;
    let from_offset = state.offset;
    // What the throughput counters have been given so far: (offset, rows).
    let mut counted = (state.offset, state.rows);
    let part_name = part.display().to_string();
    // The reading loop's time, apart from the rest (see `Finished::overhead_ms`).
    let reading = Instant::now();
    let mut runner = Runner::open(&dataset_path, file, sel, state)?;
    let mut last_cp = (Instant::now(), runner.state().rows);
    let mut last_report = Instant::now();
    let step_budget = cfg
        .progress_every
        .min(cfg.checkpoint_every)
        .max(Duration::from_millis(50));
    loop {
        if lease_lost.is_cancelled() {
            return Err(RunError::LeaseLost);
        }
        let step_rows = cfg.checkpoint_rows.max(1);
        let (r, done) = tokio::task::spawn_blocking(move || {
            let done = runner.step(step_rows, step_budget);
            (runner, done)
        })
        .await
        .map_err(|e| RunError::Retryable(format!("analysis task: {e}")))?;
        runner = r;
        let done = done?;
        if lease_lost.is_cancelled() {
            return Err(RunError::LeaseLost);
        }
        let st = runner.state();
        crate::metrics::record(
            st.offset.saturating_sub(counted.0),
            st.rows.saturating_sub(counted.1),
        );
        counted = (st.offset, st.rows);
        let read = st.offset.saturating_sub(from_offset);
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        if !done && last_report.elapsed() >= cfg.progress_every {
            last_report = Instant::now();
            let rate = read as f64 / secs;
            let left = total.saturating_sub(st.offset.saturating_sub(data_start));
            let pct = (st.offset.saturating_sub(data_start) * 100 / total).min(99) as u8;
            progress(
                pct,
                format!("{} rows", st.rows),
                json!({
                    "rows": st.rows,
                    "bytes": st.offset,
                    "rows_per_sec": ((st.rows as f64 - resumed.map_or(0.0, |r| r.1 as f64)) / secs).round(),
                    "mb_per_sec": (rate / 1e6 * 100.0).round() / 100.0,
                    "eta_secs": if rate > 0.0 { (left as f64 / rate).round() } else { 0.0 },
                }),
            );
        }
        if done {
            break;
        }
        if last_cp.0.elapsed() >= cfg.checkpoint_every || st.rows - last_cp.1 >= cfg.checkpoint_rows
        {
            runner.sync()?;
            let st = runner.state();
            if !store::save_checkpoint(db, job_id, attempt, &part_name, st).await? {
                return Err(RunError::LeaseLost);
            }
            last_cp = (Instant::now(), st.rows);
        }
    }
    runner.sync()?;
    let reading = reading.elapsed();
    if lease_lost.is_cancelled() {
        return Err(RunError::LeaseLost);
    }
    let state = runner.state().clone();
    let (scored_cells, scored_bytes) = runner.counts();
    let cost = runner.scored().map(|s| s.cost);
    drop(runner);
    let dest = results_path(data_dir, job_id);
    std::fs::rename(&part, &dest)?;
    let elapsed = started.elapsed();
    let read = state.offset.saturating_sub(from_offset);
    let bps = read as f64 / elapsed.as_secs_f64().max(1e-3);
    let results_file = format!("{job_id}.results.csv");
    store::finish_run(
        db,
        store::Finished {
            job_id,
            attempt,
            state: &state,
            results_file: &results_file,
            bytes_done: state.offset,
            elapsed_ms: elapsed.as_millis() as i64,
            bytes_per_sec: bps,
            overhead_ms: elapsed.saturating_sub(reading).as_millis() as i64,
            scored_cells,
            scored_bytes,
            cost,
        },
    )
    .await?;
    progress(
        100,
        format!("{} rows", state.rows),
        json!({"rows": state.rows}),
    );
    Ok(json!({
        "dataset_id": ds.id,
        "rows": state.rows,
        "malformed_rows": state.malformed,
        "results_bytes": state.results_len,
        "resumed_from": resumed.map(|(o, r)| json!({"offset": o, "rows": r})),
        "elapsed_ms": elapsed.as_millis() as u64,
        "mb_per_sec": (bps / 1e6 * 100.0).round() / 100.0,
    }))
}
