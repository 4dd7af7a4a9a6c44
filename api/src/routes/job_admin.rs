//! Steering single jobs: delete, retry, promote. Admin keys only.

use drover_queue::{MoveOutcome, RemoveOutcome};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::queue_name;
use super::views::JobView;
use crate::auth::AdminKey;
use crate::error::ApiError;
use crate::openapi::ApiTags;
use crate::state::AppState;

#[derive(ApiResponse)]
enum DeleteJobResponse {
    /// The job was deleted, whatever state it was in (except active).
    #[oai(status = 204)]
    Deleted,
}

#[derive(ApiResponse)]
enum MoveJobResponse {
    /// The job was moved to `waiting`; this is the job now.
    #[oai(status = 200)]
    Ok(Json<JobView>),
}

/// Steering single jobs.
pub struct JobAdminApi;

/// Which move, for messages.
#[derive(Clone, Copy)]
enum Move {
    Retry,
    Promote,
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Jobs")]
impl JobAdminApi {
    /// Delete a job
    ///
    /// Deletes a waiting, delayed, completed or failed job. An active job cannot be
    /// deleted (409): a worker is running it; wait until it finishes.
    #[oai(
        path = "/queues/:queue/jobs/:id",
        method = "delete",
        operation_id = "delete_job"
    )]
    async fn delete_job(
        &self,
        _key: AdminKey,
        state: Data<&AppState>,
        /// `export`, `analysis`, `aggregation` or `cleanup`.
        queue: Path<String>,
        /// The job's id.
        id: Path<String>,
    ) -> Result<DeleteJobResponse, ApiError> {
        let name = queue_name(&queue.0)?;
        match state.queues().get(name).remove(&id.0).await? {
            RemoveOutcome::Removed(was) => {
                tracing::info!(queue = %name, job.id = %id.0, was = %was, "job deleted");
                Ok(DeleteJobResponse::Deleted)
            }
            RemoveOutcome::Active => Err(ApiError::conflict(format!(
                "job {:?} is active: a worker is running it; delete it once it has finished",
                id.0
            ))),
            RemoveOutcome::NotFound => Err(not_found(name, &id.0)),
        }
    }

    /// Retry a failed job
    ///
    /// Moves a failed job back to `waiting` with its attempts reset; its error history
    /// is kept. Any other state answers 409.
    #[oai(
        path = "/queues/:queue/jobs/:id/retry",
        method = "post",
        operation_id = "retry_job"
    )]
    async fn retry_job(
        &self,
        _key: AdminKey,
        state: Data<&AppState>,
        /// `export`, `analysis`, `aggregation` or `cleanup`.
        queue: Path<String>,
        /// The job's id.
        id: Path<String>,
    ) -> Result<MoveJobResponse, ApiError> {
        move_job(&state, &queue.0, &id.0, Move::Retry).await
    }

    /// Promote a delayed job
    ///
    /// Runs a delayed job (scheduled, or waiting out a retry backoff) now: it moves to
    /// `waiting`. Any other state answers 409.
    #[oai(
        path = "/queues/:queue/jobs/:id/promote",
        method = "post",
        operation_id = "promote_job"
    )]
    async fn promote_job(
        &self,
        _key: AdminKey,
        state: Data<&AppState>,
        /// `export`, `analysis`, `aggregation` or `cleanup`.
        queue: Path<String>,
        /// The job's id.
        id: Path<String>,
    ) -> Result<MoveJobResponse, ApiError> {
        move_job(&state, &queue.0, &id.0, Move::Promote).await
    }
}

async fn move_job(
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
