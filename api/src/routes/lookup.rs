//! Finding a job: in its queue in Redis, else in the database's archive.
//!
//! The cleanup job moves finished jobs out of Redis into `job_history`; a client that
//! kept a job's link still finds it there. When Redis cannot be reached the archive is
//! still asked, so an archived job reads even during an outage; anything else is a 503.

use drover_entities::job_history;
use drover_jobs::QueueName;
use sea_orm::EntityTrait;

use super::views::JobView;
use crate::error::ApiError;
use crate::state::AppState;

/// Job `id` of queue `name`, or `None`.
pub async fn find_in_queue(
    state: &AppState,
    name: QueueName,
    id: &str,
) -> Result<Option<JobView>, ApiError> {
    match state.queues().get(name).get(id).await {
        Ok(Some(j)) => Ok(Some(j.into())),
        Ok(None) => Ok(archived(state, id)
            .await?
            .filter(|j| j.queue == name.as_str())
            .map(Into::into)),
        Err(e) => match archived(state, id).await {
            Ok(Some(j)) if j.queue == name.as_str() => Ok(Some(j.into())),
            _ => Err(e.into()),
        },
    }
}

/// Job `id` of whatever queue, or `None`.
pub async fn find_anywhere(state: &AppState, id: &str) -> Result<Option<JobView>, ApiError> {
    let lookups = state
        .queues()
        .all()
        .map(|(_, q)| async move { q.get(id).await });
    let mut unavailable = None;
    for found in futures::future::join_all(lookups).await {
        match found {
            Ok(Some(j)) => return Ok(Some(j.into())),
            Ok(None) => {}
            Err(e) => unavailable = Some(e),
        }
    }
    match (archived(state, id).await, unavailable) {
        (Ok(Some(j)), _) => Ok(Some(j.into())),
        (_, Some(e)) => Err(e.into()),
        (Ok(None), None) => Ok(None),
        (Err(e), None) => Err(e),
    }
}

async fn archived(state: &AppState, id: &str) -> Result<Option<job_history::Model>, ApiError> {
    if id.is_empty() || id.len() > 64 {
        return Ok(None);
    }
    Ok(job_history::Entity::find_by_id(id.to_owned())
        .one(state.db())
        .await?)
}
