//! The PostgreSQL shape of the archive's upsert: a whole batch in one statement, one
//! array parameter per column, unnested by the server into rows.

use chrono::{DateTime, Utc};
use drover_queue::JobRecord;
use sea_orm::sqlx::{self, PgPool};

use super::{at, clamp, errors_json, options_json};

/// The upsert. The column list and `UNNEST`'s arguments are in the same order as the
/// binds in [`upsert`]; `DO UPDATE` sets every column but the id.
const UPSERT: &str = "\
INSERT INTO job_history (id, queue, state, payload, result, errors, failed_reason, \
attempts, max_attempts, priority, request_id, created_at, started_at, finished_at, \
archived_at, run_at, options, progress_message, worker, submitter_key_id) \
SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
$6::text[], $7::text[], $8::int4[], $9::int4[], $10::int4[], $11::text[], \
$12::timestamptz[], $13::timestamptz[], $14::timestamptz[], $15::timestamptz[], \
$16::timestamptz[], $17::text[], $18::text[], $19::text[], $20::int8[]) \
ON CONFLICT (id) DO UPDATE SET queue = EXCLUDED.queue, state = EXCLUDED.state, \
payload = EXCLUDED.payload, result = EXCLUDED.result, errors = EXCLUDED.errors, \
failed_reason = EXCLUDED.failed_reason, attempts = EXCLUDED.attempts, \
max_attempts = EXCLUDED.max_attempts, priority = EXCLUDED.priority, \
request_id = EXCLUDED.request_id, created_at = EXCLUDED.created_at, \
started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, \
archived_at = EXCLUDED.archived_at, run_at = EXCLUDED.run_at, \
options = EXCLUDED.options, progress_message = EXCLUDED.progress_message, \
worker = EXCLUDED.worker, submitter_key_id = EXCLUDED.submitter_key_id";

/// The batch, column by column.
#[derive(Default)]
struct Columns {
    id: Vec<String>,
    queue: Vec<String>,
    state: Vec<&'static str>,
    payload: Vec<String>,
    result: Vec<Option<String>>,
    errors: Vec<String>,
    failed_reason: Vec<Option<String>>,
    attempts: Vec<i32>,
    max_attempts: Vec<i32>,
    priority: Vec<i32>,
    request_id: Vec<Option<String>>,
    created_at: Vec<DateTime<Utc>>,
    started_at: Vec<Option<DateTime<Utc>>>,
    finished_at: Vec<Option<DateTime<Utc>>>,
    archived_at: Vec<DateTime<Utc>>,
    run_at: Vec<DateTime<Utc>>,
    options: Vec<Option<String>>,
    progress_message: Vec<Option<String>>,
    worker: Vec<Option<String>>,
    submitter: Vec<Option<i64>>,
}

impl Columns {
    fn of(jobs: &[JobRecord], archived_at: DateTime<Utc>) -> Self {
        let mut c = Self::default();
        for j in jobs {
            c.id.push(j.id.clone());
            c.queue.push(j.queue.clone());
            c.state.push(j.state.as_str());
            c.payload.push(j.payload.to_string());
            c.result.push(j.result.as_ref().map(ToString::to_string));
            c.errors.push(errors_json(j));
            c.failed_reason.push(j.failed_reason.clone());
            c.attempts.push(clamp(j.attempts));
            c.max_attempts.push(clamp(j.max_attempts));
            c.priority.push(i32::from(j.priority));
            c.request_id.push(j.request_id.clone());
            c.created_at.push(at(j.created_at));
            c.started_at.push(j.started_at.map(at));
            c.finished_at.push(j.finished_at.map(at));
            c.archived_at.push(archived_at);
            c.run_at.push(at(j.run_at));
            c.options.push(options_json(j));
            c.progress_message.push(j.progress_message.clone());
            c.worker.push(j.worker.clone());
            c.submitter.push(j.submitter);
        }
        c
    }
}

/// Upserts `jobs` in one statement (so in one transaction).
pub(super) async fn upsert(
    pool: &PgPool,
    jobs: &[JobRecord],
    archived_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let c = Columns::of(jobs, archived_at);
    sqlx::query(UPSERT)
        .bind(c.id)
        .bind(c.queue)
        .bind(c.state)
        .bind(c.payload)
        .bind(c.result)
        .bind(c.errors)
        .bind(c.failed_reason)
        .bind(c.attempts)
        .bind(c.max_attempts)
        .bind(c.priority)
        .bind(c.request_id)
        .bind(c.created_at)
        .bind(c.started_at)
        .bind(c.finished_at)
        .bind(c.archived_at)
        .bind(c.run_at)
        .bind(c.options)
        .bind(c.progress_message)
        .bind(c.worker)
        .bind(c.submitter)
        .execute(pool)
        .await?;
    Ok(())
}
