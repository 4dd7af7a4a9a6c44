//! Cleanup: remove what the queue's own retention does not cover.
//!
//! Plain code over a database connection, the queue handles and the data directory;
//! the `cleanup` job handler only unpacks its payload and calls [`run`]. Each kind is
//! counted first and then, unless it is a dry run, removed in batches; the result
//! counts per kind what was removed (or would be). Nothing here reads or writes a job
//! of any queue: waiting, delayed and active jobs are never touched.
//!
//! | kind | what is removed |
//! |---|---|
//! | `job_history` | archived jobs that finished more than `history_days` ago |
//! | `exports` | export rows past their expiry, or older than `exports_hours` |
//! | `export_files` | the files of those rows |
//! | `orphan_export_files` | files in `exports/` that no row names (an attempt killed between its rename and its row), untouched for `tmp_grace_hours` |
//! | `temp_files` | `tmp/*.part` files untouched for `tmp_grace_hours` (killed exports and uploads) |
//! | `stats_keys` | per-minute counter keys past the counters' window (normally gone by their TTL) |
//! | `events` | event stream entries older than `events_hours` |

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use drover_entities::{export, job_history};
use drover_jobs::data_dir;
use drover_jobs::kinds::Retention;
use drover_queue::{Queue, QueueError};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

/// Rows removed per statement.
const BATCH: u64 = 1_000;
/// Names listed per kind in the result.
const LISTED: usize = 100;

/// What to clean.
#[derive(Debug, Clone)]
pub struct CleanupSettings<'a> {
    pub retention: &'a Retention,
    pub dry_run: bool,
    /// The data directory (`DROVER_DATA_DIR`).
    pub data_dir: &'a Path,
    /// How long per-minute counters live (`DROVER_STATS_WINDOW_HOURS`).
    pub stats_window: Duration,
    pub now: DateTime<Utc>,
}

/// What was removed (or would be, in a dry run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub dry_run: bool,
    /// Count per kind (every kind present, 0 when nothing).
    pub counts: BTreeMap<&'static str, u64>,
    /// The ids of the export rows removed, and the names of files removed (at most 100 each).
    pub exports: Vec<String>,
    pub files: Vec<String>,
}

/// Why a cleanup failed.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("redis: {0}")]
    Redis(#[from] QueueError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

fn hours(h: u32) -> chrono::Duration {
    chrono::Duration::hours(i64::from(h))
}

fn history_condition(cutoff: DateTime<Utc>) -> Condition {
    use job_history::Column as C;
    Condition::any().add(C::FinishedAt.lt(cutoff)).add(
        Condition::all()
            .add(C::FinishedAt.is_null())
            .add(C::ArchivedAt.lt(cutoff)),
    )
}

fn exports_condition(s: &CleanupSettings<'_>) -> Condition {
    use export::Column as C;
    Condition::any()
        .add(C::ExpiresAt.lte(s.now))
        .add(C::CreatedAt.lte(s.now - hours(s.retention.exports_hours)))
}

/// Runs a cleanup.
///
/// # Errors
/// The database, Redis or the file system failed; what was removed before stays removed.
pub async fn run(
    db: &DatabaseConnection,
    queues: &[Queue],
    s: &CleanupSettings<'_>,
) -> Result<Report, CleanupError> {
    let mut r = Report {
        dry_run: s.dry_run,
        ..Report::default()
    };
    r.counts
        .insert("job_history", job_history_rows(db, s).await?);
    expired_exports(db, s, &mut r).await?;
    let grace = Duration::from_secs(3600 * u64::from(s.retention.tmp_grace_hours));
    let referenced: HashSet<String> = export::Entity::find()
        .select_only()
        .column(export::Column::FileName)
        .into_tuple::<String>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let exports_dir = data_dir::exports_dir(s.data_dir);
    let orphans = old_files(
        &exports_dir,
        grace,
        |n| !referenced.contains(n),
        s.dry_run,
        &mut r,
    )?;
    r.counts.insert("orphan_export_files", orphans);
    let tmp = data_dir::tmp_dir(s.data_dir);
    let parts = old_files(
        &tmp,
        grace,
        |n| n.ends_with(data_dir::PART_SUFFIX),
        s.dry_run,
        &mut r,
    )?;
    r.counts.insert("temp_files", parts);
    let (mut stats, mut events) = (0, 0);
    for q in queues {
        stats += stale_stats_keys(q, s).await?;
        events += old_events(q, s).await?;
    }
    r.counts.insert("stats_keys", stats);
    r.counts.insert("events", events);
    Ok(r)
}

async fn job_history_rows(
    db: &DatabaseConnection,
    s: &CleanupSettings<'_>,
) -> Result<u64, CleanupError> {
    use job_history::Column as C;
    let cond =
        history_condition(s.now - chrono::Duration::days(i64::from(s.retention.history_days)));
    if s.dry_run {
        return Ok(job_history::Entity::find().filter(cond).count(db).await?);
    }
    let mut removed = 0;
    loop {
        let ids: Vec<String> = job_history::Entity::find()
            .select_only()
            .column(C::Id)
            .filter(cond.clone())
            .order_by_asc(C::Id)
            .limit(BATCH)
            .into_tuple()
            .all(db)
            .await?;
        if ids.is_empty() {
            return Ok(removed);
        }
        let res = job_history::Entity::delete_many()
            .filter(C::Id.is_in(ids))
            .exec(db)
            .await?;
        removed += res.rows_affected;
    }
}

async fn expired_exports(
    db: &DatabaseConnection,
    s: &CleanupSettings<'_>,
    r: &mut Report,
) -> Result<(), CleanupError> {
    use export::Column as C;
    let dir = data_dir::exports_dir(s.data_dir);
    let (mut rows, mut files) = (0, 0);
    let mut after: Option<String> = None;
    loop {
        let mut q = export::Entity::find().filter(exports_condition(s));
        if let Some(a) = &after {
            q = q.filter(C::Id.gt(a.clone()));
        }
        let page = q.order_by_asc(C::Id).limit(BATCH).all(db).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for e in &page {
            // The name came from our own writer; check it anyway before joining.
            let path = data_dir::is_plain_file_name(&e.file_name).then(|| dir.join(&e.file_name));
            if let Some(path) = path.filter(|p| p.is_file()) {
                files += 1;
                if r.files.len() < LISTED {
                    r.files.push(e.file_name.clone());
                }
                if !s.dry_run {
                    remove(&path)?;
                }
            }
            rows += 1;
            if r.exports.len() < LISTED {
                r.exports.push(e.id.clone());
            }
        }
        if !s.dry_run {
            export::Entity::delete_many()
                .filter(C::Id.is_in(page.iter().map(|e| e.id.clone())))
                .exec(db)
                .await?;
        }
    }
    r.counts.insert("exports", rows);
    r.counts.insert("export_files", files);
    Ok(())
}

fn remove(path: &Path) -> Result<(), CleanupError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(CleanupError::Io {
            what: format!("remove {}", path.display()),
            source,
        }),
    }
}

/// Regular files in `dir` whose name passes `pick`, untouched for `grace`.
fn old_files(
    dir: &Path,
    grace: Duration,
    pick: impl Fn(&str) -> bool,
    dry_run: bool,
    r: &mut Report,
) -> Result<u64, CleanupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(CleanupError::Io {
                what: format!("list {}", dir.display()),
                source,
            });
        }
    };
    let now = SystemTime::now();
    let mut n = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if !meta.is_file() || !pick(name) || age < grace {
            continue;
        }
        n += 1;
        if r.files.len() < LISTED {
            r.files.push(name.to_owned());
        }
        if !dry_run {
            remove(&entry.path())?;
        }
    }
    Ok(n)
}

/// Counter keys of `q` whose minute is past the counters' window.
async fn stale_stats_keys(q: &Queue, s: &CleanupSettings<'_>) -> Result<u64, CleanupError> {
    let window = chrono::Duration::from_std(s.stats_window).unwrap_or(chrono::Duration::hours(48));
    let oldest_minute = (s.now - window).timestamp().div_euclid(60);
    let prefix = format!("{}stats:", q.keys().prefix);
    let pattern = format!("{}*", redis_glob_escape(&prefix));
    let mut cursor: u64 = 0;
    let mut n = 0;
    loop {
        // On a cluster, the queue's keys are all on the master of its slot.
        let (next, keys): (u64, Vec<String>) = q
            .redis()
            .query_on_slot(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000),
                q.slot(),
            )
            .await?;
        let stale: Vec<&String> = keys
            .iter()
            .filter(|k| {
                k.strip_prefix(&prefix)
                    .and_then(|m| m.parse::<i64>().ok())
                    .is_some_and(|m| m < oldest_minute)
            })
            .collect();
        n += stale.len() as u64;
        if !s.dry_run && !stale.is_empty() {
            let _: u64 = q.redis().query(redis::cmd("DEL").arg(&stale)).await?;
        }
        if next == 0 {
            return Ok(n);
        }
        cursor = next;
    }
}

/// Escapes the glob characters of a key prefix (`{ns:q}` has none but braces are fine;
/// `[`, `]`, `*`, `?` and `\` are escaped).
fn redis_glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Entries of `q`'s event stream older than `events_hours`.
async fn old_events(q: &Queue, s: &CleanupSettings<'_>) -> Result<u64, CleanupError> {
    let min_ms = (s.now - hours(s.retention.events_hours))
        .timestamp_millis()
        .max(0);
    let min_id = format!("{min_ms}-0");
    let stream = &q.keys().events;
    if !s.dry_run {
        let n: u64 = q
            .redis()
            .query(redis::cmd("XTRIM").arg(stream).arg("MINID").arg(&min_id))
            .await?;
        return Ok(n);
    }
    // Count the entries before `min_id`, a thousand at a time.
    let mut start = "-".to_owned();
    let mut n = 0;
    loop {
        let reply: redis::streams::StreamRangeReply = q
            .redis()
            .query(
                redis::cmd("XRANGE")
                    .arg(stream)
                    .arg(&start)
                    .arg(format!("({min_id}"))
                    .arg("COUNT")
                    .arg(1000),
            )
            .await?;
        let Some(last) = reply.ids.last() else {
            return Ok(n);
        };
        n += reply.ids.len() as u64;
        start = format!("({}", last.id);
    }
}
