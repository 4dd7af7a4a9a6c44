//! Finding a job: in its queue in Redis, else in the database's archive, for a key
//! that may read it (an admin key, or the submitter key that submitted it: to any
//! other key the job is not there).
//!
//! The cleanup job moves finished jobs out of Redis into `job_history`; a client that
//! kept a job's link still finds it there. When Redis cannot be reached the archive is
//! still asked, so an archived job reads even during an outage; anything else is a 503.

use drover_entities::job_history;
use drover_jobs::QueueName;
use sea_orm::EntityTrait;

use super::views::JobView;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

/// Job `id` of queue `name`, or `None`.
pub async fn find_in_queue(
    state: &AppState,
    key: &Principal,
    name: QueueName,
    id: &str,
) -> Result<Option<JobView>, ApiError> {
    if !key.may_use(name) {
        return Ok(None);
    }
    let readable = |j: &job_history::Model| {
        j.queue == name.as_str() && key.may_read(&j.queue, j.submitter_key_id)
    };
    match state.queues().get(name).get(id).await {
        Ok(Some(j)) => Ok(key.may_read(&j.queue, j.submitter).then(|| j.into())),
        Ok(None) => Ok(archived(state, id).await?.filter(readable).map(Into::into)),
        Err(e) => match archived(state, id).await {
            Ok(Some(j)) if readable(&j) => Ok(Some(j.into())),
            _ => Err(e.into()),
        },
    }
}

/// Job `id` of whatever queue, or `None`.
pub async fn find_anywhere(
    state: &AppState,
    key: &Principal,
    id: &str,
) -> Result<Option<JobView>, ApiError> {
    let lookups = state
        .queues()
        .all()
        .filter(|(name, _)| key.may_use(*name))
        .map(|(_, q)| async move { q.get(id).await });
    let mut unavailable = None;
    for found in futures::future::join_all(lookups).await {
        match found {
            Ok(Some(j)) if key.may_read(&j.queue, j.submitter) => return Ok(Some(j.into())),
            Ok(_) => {}
            Err(e) => unavailable = Some(e),
        }
    }
    let archived = archived(state, id)
        .await
        .map(|j| j.filter(|j| key.may_read(&j.queue, j.submitter_key_id)));
    match (archived, unavailable) {
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
