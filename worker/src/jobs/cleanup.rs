//! The `cleanup` job. Archives and deletes what is past retention (its own issue). For now it validates the payload and acknowledges it.
//!
//! The payload was checked when it was submitted; it is checked again here because
//! the queue may hold jobs submitted by an older version or written by hand.

use apalis::prelude::Data;
use drover_jobs::kinds::{CleanupPayload, JobKind};
use drover_queue::worker::{JobContext, JobError};
use serde_json::{Value, json};

use crate::deps::Deps;

/// Runs one `cleanup` job.
pub async fn handle(
    payload: CleanupPayload,
    ctx: JobContext,
    _deps: Data<Deps>,
) -> Result<Value, JobError> {
    payload.validate().map_err(JobError::permanent)?;
    ctx.progress(100, "payload validated", json!({}));
    Ok(json!({ "status": "accepted", "job_kind": "cleanup" }))
}
