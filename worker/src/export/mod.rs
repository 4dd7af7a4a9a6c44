//! Export: stream the rows of a source into a file, page by page, in constant memory.
//!
//! Plain code over plain inputs (a database connection, the data directory, a
//! cancellation token), so tests run it without a queue; the `export` job handler only
//! unpacks its context and calls [`run`].
//!
//! # How a file comes to be
//!
//! 1. Each attempt writes its own temporary file, `<data dir>/tmp/export.<job>.<attempt>.part`
//!    (earlier attempts' leftovers of the same job are deleted first: their writers are dead
//!    or have lost their lease).
//! 2. Rows are read by keyset pagination, a page at a time; the next page is read while
//!    the current one is encoded and written, on the blocking pool. Memory holds two pages.
//! 3. Between pages the attempt checks its lease: once it is lost, another attempt may be
//!    running, so this one deletes its temporary file and stops.
//! 4. The finished file is synced, checked against the lease once more, and renamed into
//!    `<data dir>/exports/export-<job>-<attempt>.<ext>`: the attempt is in the name, so two
//!    attempts never rename onto one file, and the row always describes the file it names.
//! 5. The row in `exports` (path, bytes, rows, sha256, expiry) is upserted by job id. If
//!    an earlier attempt of the job had recorded a file, that file is deleted.
//!
//! Any failure (and a panic, or the future being dropped) deletes the temporary file; a
//! process killed outright leaves it in `tmp/`, never in `exports/`, and the cleanup job
//! removes it once it is older than its grace.

mod rows;
mod writer;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use drover_entities::{aggregate, analysis_summary, export, job_history};
use drover_jobs::data_dir;
use drover_jobs::kinds::{ExportFormat, ExportPayload, ExportSource};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait};
use tokio_util::sync::CancellationToken;

pub use rows::{Row, ts};
pub use writer::Written;

use writer::Encoder;

/// Rows read per page.
pub const PAGE_ROWS: u64 = 2_000;

/// Where and how long export files are kept.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// The data directory (`DROVER_DATA_DIR`).
    pub data_dir: PathBuf,
    /// A file expires (and the cleanup job deletes it) this long after it was made.
    pub ttl: Duration,
    /// Rows per page.
    pub page_rows: u64,
}

/// The export job being run.
#[derive(Debug, Clone, Copy)]
pub struct ExportJob<'a> {
    /// The job's id: the export's id too.
    pub id: &'a str,
    /// This attempt's number, from 1.
    pub attempt: u32,
    pub payload: &'a ExportPayload,
}

/// Told how far the export has got, after each page.
pub trait Progress: Send + Sync {
    /// `done` of `total` rows written, at `rows_per_s` since the start.
    fn rows(&self, done: u64, total: u64, rows_per_s: f64);
}

/// Progress that goes nowhere.
impl Progress for () {
    fn rows(&self, _: u64, _: u64, _: f64) {}
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("read the rows: {0}")]
    Db(#[from] DbErr),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "the lease of this attempt was lost: stopped before writing more, and deleted the partial file"
    )]
    LeaseLost,
    #[error("{0}")]
    Unavailable(String),
}

impl ExportError {
    /// Whether retrying cannot help.
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        matches!(self, ExportError::Unavailable(_))
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ExportError {
    let what = what.into();
    move |source| ExportError::Io { what, source }
}

/// Runs an export to the end, or until the lease is lost; returns the row it recorded.
///
/// # Errors
/// [`ExportError::Unavailable`] for a source this build cannot read (permanent); the
/// database, the file system and a lost lease otherwise (retryable).
pub async fn run(
    db: &DatabaseConnection,
    settings: &ExportSettings,
    job: ExportJob<'_>,
    progress: &dyn Progress,
    lease_lost: &CancellationToken,
) -> Result<export::Model, ExportError> {
    match job.payload.source {
        ExportSource::JobHistory => {
            run_rows::<job_history::Model>(db, settings, job, progress, lease_lost).await
        }
        ExportSource::Aggregates => {
            run_rows::<aggregate::Model>(db, settings, job, progress, lease_lost).await
        }
        ExportSource::AnalysisResults => {
            run_rows::<analysis_summary::Model>(db, settings, job, progress, lease_lost).await
        }
    }
}

/// The temporary file of an attempt, deleted when dropped unless it was published.
struct PartFile {
    path: PathBuf,
    armed: bool,
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn format_name(f: ExportFormat) -> &'static str {
    match f {
        ExportFormat::Csv => "csv",
        ExportFormat::Jsonl => "jsonl",
    }
}

fn source_name(s: ExportSource) -> &'static str {
    match s {
        ExportSource::JobHistory => "job_history",
        ExportSource::Aggregates => "aggregates",
        ExportSource::AnalysisResults => "analysis_results",
    }
}

/// Deletes the temporary files earlier attempts of job `id` left behind.
fn remove_earlier_parts(tmp: &Path, id: &str, attempt: u32) -> io::Result<()> {
    let prefix = data_dir::export_part_prefix(id);
    let mine = data_dir::export_part_name(id, attempt);
    for entry in std::fs::read_dir(tmp)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(&prefix) && name.ends_with(data_dir::PART_SUFFIX) && name != mine {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Writes a page on the blocking pool, handing the encoder back.
async fn write_page<R: Row>(mut enc: Encoder, page: Vec<R>) -> Result<Encoder, ExportError> {
    tokio::task::spawn_blocking(move || enc.write_rows(&page).map(|()| enc))
        .await
        .map_err(|e| ExportError::Io {
            what: "write the export file".to_owned(),
            source: io::Error::other(e.to_string()),
        })?
        .map_err(io_err("write the export file"))
}

async fn run_rows<R: Row>(
    db: &DatabaseConnection,
    settings: &ExportSettings,
    job: ExportJob<'_>,
    progress: &dyn Progress,
    lease_lost: &CancellationToken,
) -> Result<export::Model, ExportError> {
    let payload = job.payload;
    let tmp = data_dir::tmp_dir(&settings.data_dir);
    let exports = data_dir::exports_dir(&settings.data_dir);
    for dir in [&tmp, &exports] {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(io_err(format!("create {}", dir.display())))?;
    }
    let (tmp2, id, attempt) = (tmp.clone(), job.id.to_owned(), job.attempt);
    tokio::task::spawn_blocking(move || remove_earlier_parts(&tmp2, &id, attempt))
        .await
        .map_err(|e| io::Error::other(e.to_string()))
        .and_then(|r| r)
        .map_err(io_err("delete earlier attempts' temporary files"))?;

    let filters = &payload.filters;
    let limit = filters.limit.unwrap_or(u64::MAX);
    let total = R::count(db, filters).await?.min(limit);
    let page_rows = settings.page_rows.max(1);

    let part = PartFile {
        path: tmp.join(data_dir::export_part_name(job.id, job.attempt)),
        armed: true,
    };
    let (path, format, gzip) = (part.path.clone(), payload.format, payload.gzip);
    let mut enc = tokio::task::spawn_blocking(move || Encoder::create(&path, format, gzip))
        .await
        .map_err(|e| io::Error::other(e.to_string()))
        .and_then(|r| r)
        .map_err(io_err(format!("create {}", part.path.display())))?;

    let started = Instant::now();
    let mut done: u64 = 0;
    let mut requested = page_rows.min(limit);
    let mut page = R::page(db, filters, None, requested).await?;
    while !page.is_empty() {
        if lease_lost.is_cancelled() {
            return Err(ExportError::LeaseLost);
        }
        // A short page is the last one.
        let full = page.len() as u64 >= requested;
        page.truncate(usize::try_from(limit - done).unwrap_or(usize::MAX));
        let last = page.last().map(Row::key);
        done += page.len() as u64;
        requested = (limit - done).min(page_rows);
        let next = async {
            match last {
                Some(key) if full && requested > 0 => {
                    R::page(db, filters, Some(key), requested).await
                }
                _ => Ok(Vec::new()),
            }
        };
        let (written, next) = tokio::join!(write_page(enc, page), next);
        enc = written?;
        page = next?;
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        progress.rows(done, total.max(done), done as f64 / secs);
    }
    if lease_lost.is_cancelled() {
        return Err(ExportError::LeaseLost);
    }
    let written = tokio::task::spawn_blocking(move || enc.finish::<R>())
        .await
        .map_err(|e| io::Error::other(e.to_string()))
        .and_then(|r| r)
        .map_err(io_err("finish the export file"))?;
    if lease_lost.is_cancelled() {
        return Err(ExportError::LeaseLost);
    }

    let file_name =
        data_dir::export_file_name(job.id, job.attempt, format_name(format), payload.gzip);
    let target = exports.join(&file_name);
    tokio::fs::rename(&part.path, &target)
        .await
        .map_err(io_err(format!(
            "move the export into {}",
            exports.display()
        )))?;
    let mut part = part;
    part.armed = false;
    // From here the file is published; if it cannot be recorded, take it back.
    let published = PartFile {
        path: target,
        armed: true,
    };

    let previous = export::Entity::find_by_id(job.id.to_owned())
        .one(db)
        .await?;
    let now = Utc::now();
    let ttl = chrono::Duration::from_std(settings.ttl).unwrap_or(chrono::Duration::days(7));
    let model = export::Model {
        id: job.id.to_owned(),
        source: source_name(payload.source).to_owned(),
        format: format_name(format).to_owned(),
        gzip: payload.gzip,
        filters: serde_json::to_string(&payload.filters).unwrap_or_else(|_| "{}".to_owned()),
        file_name: file_name.clone(),
        bytes: i64::try_from(written.bytes).unwrap_or(i64::MAX),
        rows: i64::try_from(done).unwrap_or(i64::MAX),
        sha256: written.sha256.clone(),
        attempt: i32::try_from(job.attempt).unwrap_or(i32::MAX),
        created_at: now,
        expires_at: now + ttl,
    };
    upsert(db, &model).await?;
    let mut published = published;
    published.armed = false;
    if let Some(prev) = previous
        && prev.file_name != file_name
        && data_dir::is_plain_file_name(&prev.file_name)
    {
        // An earlier attempt finished and recorded its file, but its outcome was lost.
        let _ = tokio::fs::remove_file(exports.join(&prev.file_name)).await;
    }
    Ok(model)
}

async fn upsert(db: &DatabaseConnection, m: &export::Model) -> Result<(), DbErr> {
    use export::Column as C;
    let active = export::ActiveModel {
        id: Set(m.id.clone()),
        source: Set(m.source.clone()),
        format: Set(m.format.clone()),
        gzip: Set(m.gzip),
        filters: Set(m.filters.clone()),
        file_name: Set(m.file_name.clone()),
        bytes: Set(m.bytes),
        rows: Set(m.rows),
        sha256: Set(m.sha256.clone()),
        attempt: Set(m.attempt),
        created_at: Set(m.created_at),
        expires_at: Set(m.expires_at),
    };
    export::Entity::insert(active)
        .on_conflict(
            OnConflict::column(C::Id)
                .update_columns([
                    C::Source,
                    C::Format,
                    C::Gzip,
                    C::Filters,
                    C::FileName,
                    C::Bytes,
                    C::Rows,
                    C::Sha256,
                    C::Attempt,
                    C::CreatedAt,
                    C::ExpiresAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .map(drop)
}
