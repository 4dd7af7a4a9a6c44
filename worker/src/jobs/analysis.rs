//! The `analysis` job: unpacks the job and calls `drover_analysis::job::run`, which
//! scores the dataset with checkpoints (see that crate).
//!
//! The payload was checked when it was submitted; it is checked again here because
//! the queue may hold jobs submitted by an older version or written by hand.

use apalis::prelude::Data;
use drover_analysis::job::{self, JobSpec, RunError};
use drover_analysis::store;
use drover_jobs::kinds::{AnalysisPayload, JobKind};
use drover_queue::worker::{JobContext, JobError};
use serde_json::Value;

use crate::deps::Deps;

/// Runs one attempt of an `analysis` job.
pub async fn handle(
    payload: AnalysisPayload,
    ctx: JobContext,
    deps: Data<Deps>,
) -> Result<Value, JobError> {
    payload.validate().map_err(JobError::permanent)?;
    let spec = JobSpec {
        job_id: ctx.id(),
        attempt: ctx.attempt(),
        dataset_id: &payload.dataset_id,
        columns: &payload.columns,
    };
    let out = job::run(
        &deps.db,
        &deps.data_dir,
        spec,
        deps.analysis,
        ctx.lease_lost(),
        |pct, msg, data| ctx.progress(pct, msg, data),
    )
    .await;
    match out {
        Ok(v) => Ok(v),
        Err(e) => {
            let last = matches!(e, RunError::Permanent(_)) || ctx.is_last_attempt();
            // A lost lease belongs to the attempt that took over: record nothing.
            if last
                && !matches!(e, RunError::LeaseLost)
                && let Err(db) = store::fail_run(&deps.db, ctx.id(), &e.to_string()).await
            {
                tracing::warn!(job_id = ctx.id(), error = %db, "could not record the failed analysis");
            }
            Err(match e {
                RunError::Permanent(m) => JobError::permanent(m),
                other => JobError::retryable(other),
            })
        }
    }
}
