//! The `cleanup` job: unpacks the job and runs [`crate::cleanup::run`].
//!
//! The payload was checked when it was submitted; it is checked again here because
//! the queue may hold jobs submitted by an older version or written by hand.

use apalis::prelude::Data;
use drover_jobs::kinds::{CleanupPayload, JobKind};
use drover_queue::worker::{JobContext, JobError};
use serde_json::{Value, json};

use crate::cleanup::{self, CleanupSettings};
use crate::deps::Deps;

/// Runs one `cleanup` job.
pub async fn handle(
    payload: CleanupPayload,
    ctx: JobContext,
    deps: Data<Deps>,
) -> Result<Value, JobError> {
    payload.validate().map_err(JobError::permanent)?;
    let settings = CleanupSettings {
        retention: &payload.retention,
        dry_run: payload.dry_run,
        data_dir: &deps.data_dir,
        stats_window: deps.stats_window,
        now: chrono::Utc::now(),
    };
    let r = cleanup::run(&deps.db, &deps.queue_list(), &settings)
        .await
        .map_err(JobError::retryable)?;
    let total: u64 = r.counts.values().sum();
    let verb = if r.dry_run { "would remove" } else { "removed" };
    ctx.progress(
        100,
        format!("{verb} {total} items"),
        json!({ "total": total }),
    );
    Ok(json!({
        "dry_run": r.dry_run,
        "counts": r.counts,
        "exports": r.exports,
        "files": r.files,
    }))
}
