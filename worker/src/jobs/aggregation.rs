//! The `aggregation` job: unpacks the job and runs [`crate::aggregation::run`].
//!
//! The payload was checked when it was submitted; it is checked again here because
//! the queue may hold jobs submitted by an older version or written by hand.

use apalis::prelude::Data;
use drover_jobs::kinds::{AggregationPayload, JobKind};
use drover_queue::worker::{JobContext, JobError};
use serde_json::{Value, json};

use crate::aggregation;
use crate::deps::Deps;

/// Runs one `aggregation` job.
pub async fn handle(
    payload: AggregationPayload,
    ctx: JobContext,
    deps: Data<Deps>,
) -> Result<Value, JobError> {
    payload.validate().map_err(JobError::permanent)?;
    let s = aggregation::run(
        &deps.db,
        &deps.queue_list(),
        payload.granularity,
        payload.bucket_start,
        deps.stats_window,
        chrono::Utc::now(),
    )
    .await
    .map_err(|e| {
        if e.is_permanent() {
            JobError::permanent(e)
        } else {
            JobError::retryable(e)
        }
    })?;
    ctx.progress(100, format!("{} rows", s.rows), json!({ "rows": s.rows }));
    let queues: serde_json::Map<String, Value> = s
        .queues
        .iter()
        .map(|(name, t)| {
            (
                name.clone(),
                t.metrics()
                    .into_iter()
                    .map(|(m, v)| (m.to_owned(), json!(v)))
                    .collect::<serde_json::Map<_, _>>()
                    .into(),
            )
        })
        .collect();
    Ok(json!({
        "granularity": payload.granularity.as_str(),
        "bucket_start": payload.bucket_start,
        "rows": s.rows,
        "queues": queues,
        "analysis": "not available",
    }))
}
