//! The archive sink: finished jobs into `job_history`, in batched upserts.
//!
//! Each batch is committed before the enforcer removes anything from Redis, and goes
//! in as `INSERT … ON CONFLICT (id) DO UPDATE`, so a re-archive after a crash rewrites
//! the same row instead of failing or duplicating it. `DO UPDATE` rather than `DO
//! NOTHING` because a job archived, then retried by an admin before its removal,
//! finishes again later with a newer record, and the newer one is the one to keep.
//!
//! Two shapes of the same upsert, one per engine:
//! - **PostgreSQL**: one statement per batch whatever its size, with one array
//!   parameter per column (`SELECT … FROM UNNEST($1::text[], …)`). Twenty parameters
//!   instead of twenty per row: the server parses and plans a short statement once
//!   per connection, and the client encodes arrays instead of building a statement
//!   with tens of thousands of bound values. A single statement is its own
//!   transaction.
//! - **SQLite** (no arrays): fixed-size multi-row `VALUES` statements in one
//!   transaction; the statement text repeats, so each connection prepares it once.

use chrono::{DateTime, TimeZone, Utc};
use drover_entities::job_history;
use drover_queue::JobRecord;
use drover_queue::retention::{ArchiveError, ArchiveSink};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, DatabaseConnection, DbBackend, EntityTrait, TransactionTrait};

mod postgres;

/// Counter: rows written to the archive (committed), by `queue`.
pub const ARCHIVE_ROWS: &str = "drover_archive_rows_total";

/// Rows per `INSERT` statement: 500 rows of 19 columns stay under SQLite's 32,766
/// and PostgreSQL's 65,535 bind parameters, and the statement is long enough that
/// per-statement costs vanish.
pub const ROWS_PER_STATEMENT: usize = 500;

/// Archives into the `job_history` table of a database.
#[derive(Clone)]
pub struct SqlArchive {
    db: DatabaseConnection,
}

impl SqlArchive {
    #[must_use]
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Writes `jobs` in one transaction; returns the rows written.
    pub async fn write(&self, queue: &str, jobs: &[JobRecord]) -> Result<u64, sea_orm::DbErr> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let archived_at = Utc::now();
        if self.db.get_database_backend() == DbBackend::Postgres {
            postgres::upsert(self.db.get_postgres_connection_pool(), jobs, archived_at)
                .await
                .map_err(|e| sea_orm::DbErr::Custom(format!("archiving into job_history: {e}")))?;
        } else {
            let txn = self.db.begin().await?;
            for chunk in jobs.chunks(ROWS_PER_STATEMENT) {
                let rows = chunk.iter().map(|j| row(j, archived_at));
                job_history::Entity::insert_many(rows)
                    .on_conflict(upsert())
                    .exec_without_returning(&txn)
                    .await?;
            }
            txn.commit().await?;
        }
        let n = jobs.len() as u64;
        metrics::counter!(ARCHIVE_ROWS, "queue" => queue.to_owned()).increment(n);
        Ok(n)
    }
}

impl ArchiveSink for SqlArchive {
    async fn archive(&self, queue: &str, jobs: &[JobRecord]) -> Result<u64, ArchiveError> {
        Ok(self.write(queue, jobs).await?)
    }
}

fn upsert() -> OnConflict {
    use job_history::Column as C;
    OnConflict::column(C::Id)
        .update_columns([
            C::Queue,
            C::State,
            C::Payload,
            C::Result,
            C::Errors,
            C::FailedReason,
            C::Attempts,
            C::MaxAttempts,
            C::Priority,
            C::RequestId,
            C::CreatedAt,
            C::StartedAt,
            C::FinishedAt,
            C::ArchivedAt,
            C::RunAt,
            C::Options,
            C::ProgressMessage,
            C::Worker,
        ])
        .to_owned()
}

pub(crate) fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// The options of a job that have no column of their own, as a JSON object.
#[must_use]
pub fn options_json(j: &JobRecord) -> Option<String> {
    let mut o = serde_json::Map::new();
    if let Some(b) = &j.backoff
        && let Ok(v) = serde_json::to_value(b)
    {
        o.insert("backoff".into(), v);
    }
    if let Some(k) = &j.idempotency_key {
        o.insert("idempotency_key".into(), k.clone().into());
    }
    if let Some(r) = &j.retention
        && let Ok(v) = serde_json::to_value(r)
    {
        o.insert("retention".into(), v);
    }
    (!o.is_empty()).then(|| serde_json::Value::Object(o).to_string())
}

/// The stored text of a job's errors.
pub(crate) fn errors_json(j: &JobRecord) -> String {
    serde_json::to_string(&j.errors).unwrap_or_else(|_| "[]".to_owned())
}

/// A count as the `INTEGER` column holds it.
pub(crate) fn clamp(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn row(j: &JobRecord, archived_at: DateTime<Utc>) -> job_history::ActiveModel {
    job_history::ActiveModel {
        id: Set(j.id.clone()),
        queue: Set(j.queue.clone()),
        state: Set(j.state.as_str().to_owned()),
        payload: Set(j.payload.to_string()),
        result: Set(j.result.as_ref().map(ToString::to_string)),
        errors: Set(errors_json(j)),
        failed_reason: Set(j.failed_reason.clone()),
        attempts: Set(clamp(j.attempts)),
        max_attempts: Set(clamp(j.max_attempts)),
        priority: Set(i32::from(j.priority)),
        request_id: Set(j.request_id.clone()),
        created_at: Set(at(j.created_at)),
        started_at: Set(j.started_at.map(at)),
        finished_at: Set(j.finished_at.map(at)),
        archived_at: Set(archived_at),
        run_at: Set(Some(at(j.run_at))),
        options: Set(options_json(j)),
        progress_message: Set(j.progress_message.clone()),
        worker: Set(j.worker.clone()),
        submitter_key_id: Set(j.submitter),
    }
}
