//! Bulk actions on a queue's jobs: retry, delete or promote the jobs named, or the
//! first jobs of a state, in one bounded batch that says how many it did (admin keys).
//!
//! A batch is at most [`MAX_BULK`] jobs, each moved by the same script as the single-job
//! operation, so a bulk action never holds Redis longer than that many single ones and
//! never leaves a job half-moved. Jobs that were not in a state the action applies to
//! (a retry of a job that is no longer failed, a delete of an active job) are counted
//! as skipped with the reason, and the rest go on.

use drover_queue::{JobState, MoveOutcome, RemoveOutcome};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use serde::Deserialize;

use super::QueueParam;
use super::views::JobStateView;
use crate::auth::AdminKey;
use crate::error::ApiError;
use crate::openapi::ApiTags;
use crate::payload::JsonBody;
use crate::state::AppState;

/// Most jobs one bulk request acts on.
pub const MAX_BULK: u32 = 1000;
/// Skipped jobs listed in the answer (the count covers them all).
const MAX_SKIPPED_LISTED: usize = 50;

/// What to do with the jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Deserialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum BulkAction {
    /// Failed jobs back to waiting, attempts reset.
    Retry,
    /// Delete jobs (any state but active).
    Delete,
    /// Delayed jobs to waiting now.
    Promote,
}

fn default_bulk_limit() -> u32 {
    MAX_BULK
}

/// Which jobs, and what to do with them: either `ids`, or `state` (its first `limit`
/// jobs).
#[derive(Debug, Clone, Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    pub action: BulkAction,
    /// These jobs (1 to 1000 ids, each 1 to 64 characters).
    #[oai(validator(min_items = 1, max_items = 1000, min_length = 1, max_length = 64))]
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    /// Or the jobs in this state: the first `limit` of them in listing order.
    #[serde(default)]
    pub state: Option<JobStateView>,
    /// With `state`: at most this many jobs, 1 to 1000 (default 1000).
    #[oai(
        default = "default_bulk_limit",
        validator(minimum(value = "1"), maximum(value = "1000"))
    )]
    #[serde(default = "default_bulk_limit")]
    pub limit: u32,
}

/// A job the action did not apply to.
#[derive(Debug, Clone, Object)]
pub struct SkippedJob {
    pub id: String,
    /// Why: `not_found`, `active`, or the state it was in.
    pub reason: String,
}

/// What a bulk action did.
#[derive(Debug, Clone, Object)]
pub struct BulkResult {
    pub queue: String,
    pub action: BulkAction,
    /// Jobs the request named (or found in the state).
    pub matched: u64,
    /// Jobs the action was done to.
    pub done: u64,
    /// Jobs it did not apply to.
    pub skipped: u64,
    /// The first skipped jobs, with why.
    pub skipped_jobs: Vec<SkippedJob>,
    /// With `state`: whether jobs were left in the state past this batch (send again).
    pub more: bool,
}

#[derive(ApiResponse)]
enum BulkResponse {
    /// What was done.
    #[oai(status = 200)]
    Ok(Json<BulkResult>),
}

/// The bulk resource.
pub struct BulkApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Jobs")]
impl BulkApi {
    /// Retry, delete or promote many jobs
    ///
    /// On the jobs in `ids`, or on the first `limit` jobs of `state` (at most 1000 per
    /// request): `retry` moves failed jobs to waiting, `promote` delayed jobs to
    /// waiting, `delete` deletes jobs that are not active. Answers how many it did and
    /// which it skipped, and with `state`, whether more are left.
    #[oai(
        path = "/queues/:queue/jobs/bulk",
        method = "post",
        operation_id = "bulk_jobs"
    )]
    async fn bulk(
        &self,
        _key: AdminKey,
        state: Data<&AppState>,
        /// `export`, `analysis`, `aggregation` or `cleanup`.
        queue: Path<QueueParam>,
        body: JsonBody<BulkRequest>,
    ) -> Result<BulkResponse, ApiError> {
        let name = queue.0.queue()?;
        let req = body.0;
        let q = state.queues().get(name);
        if !(1..=MAX_BULK).contains(&req.limit) {
            return Err(ApiError::validation(
                "limit",
                format!("must be between 1 and {MAX_BULK}"),
            ));
        }
        let (ids, more) = match (req.ids, req.state) {
            (Some(ids), None) => {
                if ids.is_empty() || ids.len() > MAX_BULK as usize {
                    return Err(ApiError::validation(
                        "ids",
                        format!("give 1 to {MAX_BULK} job ids"),
                    ));
                }
                if let Some(bad) = ids.iter().position(|id| id.is_empty() || id.len() > 64) {
                    return Err(ApiError::validation(
                        &format!("ids[{bad}]"),
                        "is not a job id (1 to 64 characters)",
                    ));
                }
                (ids, false)
            }
            (None, Some(s)) => {
                let s: JobState = s.into();
                let wrong = match req.action {
                    BulkAction::Retry => s != JobState::Failed,
                    BulkAction::Promote => s != JobState::Delayed,
                    BulkAction::Delete => s == JobState::Active,
                };
                if wrong {
                    return Err(ApiError::validation(
                        "state",
                        match req.action {
                            BulkAction::Retry => "retry applies to failed jobs",
                            BulkAction::Promote => "promote applies to delayed jobs",
                            BulkAction::Delete => "active jobs cannot be deleted",
                        },
                    ));
                }
                let limit = req.limit as usize;
                let page = q.list(s, None, limit).await?;
                let more = page.next_cursor.is_some();
                (page.jobs.into_iter().map(|j| j.id).collect(), more)
            }
            _ => {
                // A rule over two fields, which the schema does not state: 422.
                return Err(ApiError::unprocessable(
                    "ids",
                    "give either ids or state, not both and not neither",
                ));
            }
        };
        let mut done = 0u64;
        let mut skipped = Vec::new();
        let mut skipped_n = 0u64;
        for id in &ids {
            let reason = match req.action {
                BulkAction::Delete => match q.remove(id).await? {
                    RemoveOutcome::Removed(_) => None,
                    RemoveOutcome::Active => Some("active".to_owned()),
                    RemoveOutcome::NotFound => Some("not_found".to_owned()),
                },
                BulkAction::Retry | BulkAction::Promote => {
                    let outcome = if req.action == BulkAction::Retry {
                        q.retry(id).await?
                    } else {
                        q.promote(id).await?
                    };
                    match outcome {
                        MoveOutcome::Moved => None,
                        MoveOutcome::WrongState(s) => Some(s.to_string()),
                        MoveOutcome::NotFound => Some("not_found".to_owned()),
                    }
                }
            };
            match reason {
                None => done += 1,
                Some(reason) => {
                    skipped_n += 1;
                    if skipped.len() < MAX_SKIPPED_LISTED {
                        skipped.push(SkippedJob {
                            id: id.clone(),
                            reason,
                        });
                    }
                }
            }
        }
        tracing::info!(queue = %name, action = ?req.action, done, skipped = skipped_n, "bulk action");
        Ok(BulkResponse::Ok(Json(BulkResult {
            queue: name.as_str().to_owned(),
            action: req.action,
            matched: ids.len() as u64,
            done,
            skipped: skipped_n,
            skipped_jobs: skipped,
            more,
        })))
    }
}
