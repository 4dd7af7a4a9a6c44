//! Steering single jobs: delete, retry, promote (admin keys; the operations are in
//! [`super::jobs`], since they share its paths).

use drover_queue::{MoveOutcome, RemoveOutcome};
use poem_openapi::ApiResponse;
use poem_openapi::payload::Json;

use super::queue_name;
use super::views::JobView;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(ApiResponse)]
pub enum DeleteJobResponse {
    /// The job was deleted, whatever state it was in (except active).
    #[oai(status = 204)]
    Deleted,
}

#[derive(ApiResponse)]
pub enum MoveJobResponse {
    /// The job was moved to `waiting`; this is the job now.
    #[oai(status = 200)]
    Ok(Json<JobView>),
}

/// Which move.
#[derive(Clone, Copy)]
pub enum Move {
    /// A failed job back to waiting.
    Retry,
    /// A delayed job to waiting.
    Promote,
}

/// Deletes a job unless it is active.
pub async fn delete_job(
    state: &AppState,
    queue: &str,
    id: &str,
) -> Result<DeleteJobResponse, ApiError> {
    let name = queue_name(queue)?;
    match state.queues().get(name).remove(id).await? {
        RemoveOutcome::Removed(was) => {
            tracing::info!(queue = %name, job.id = %id, was = %was, "job deleted");
            Ok(DeleteJobResponse::Deleted)
        }
        RemoveOutcome::Active => Err(ApiError::conflict(format!(
            "job {id:?} is active: a worker is running it; delete it once it has finished"
        ))),
        RemoveOutcome::NotFound => Err(not_found(name, id)),
    }
}

/// Moves a failed (retry) or delayed (promote) job to waiting.
pub async fn move_job(
    state: &AppState,
    queue: &str,
    id: &str,
    how: Move,
) -> Result<MoveJobResponse, ApiError> {
    let name = queue_name(queue)?;
    let q = state.queues().get(name);
    let outcome = match how {
        Move::Retry => q.retry(id).await?,
        Move::Promote => q.promote(id).await?,
    };
    match outcome {
        MoveOutcome::Moved => {
            tracing::info!(queue = %name, job.id = %id, action = match how { Move::Retry => "retry", Move::Promote => "promote" }, "job moved to waiting");
            let job = q.get(id).await?.ok_or_else(|| not_found(name, id))?;
            Ok(MoveJobResponse::Ok(Json(job.into())))
        }
        MoveOutcome::WrongState(s) => Err(ApiError::conflict(match how {
            Move::Retry => format!("job {id:?} is {s}: only failed jobs can be retried"),
            Move::Promote => format!("job {id:?} is {s}: only delayed jobs can be promoted"),
        })),
        MoveOutcome::NotFound => Err(not_found(name, id)),
    }
}

fn not_found(queue: drover_jobs::QueueName, id: &str) -> ApiError {
    ApiError::not_found(format!("no job {id:?} in queue {queue}"))
}
