//! The `aggregation` job. Rolls counters and results up into aggregates (its own issue). For now it validates the payload and acknowledges it.
//!
//! The payload was checked when it was submitted; it is checked again here because
//! the queue may hold jobs submitted by an older version or written by hand.

use apalis::prelude::Data;
use drover_jobs::kinds::{AggregationPayload, JobKind};
use drover_queue::worker::{JobContext, JobError};
use serde_json::{Value, json};

use crate::deps::Deps;

/// Runs one `aggregation` job.
pub async fn handle(
    payload: AggregationPayload,
    ctx: JobContext,
    _deps: Data<Deps>,
) -> Result<Value, JobError> {
    payload.validate().map_err(JobError::permanent)?;
    ctx.progress(100, "payload validated", json!({}));
    Ok(json!({ "status": "accepted", "job_kind": "aggregation" }))
}
