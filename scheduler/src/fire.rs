//! Carrying out one fire: decide (overlap, payload), record the decision, enqueue.
//!
//! Order matters for "one fire, one job". The decision is recorded first (a unique row
//! per schedule and scheduled time, [`store::claim`]); only the caller whose row went
//! in goes on to enqueue, with the idempotency key [`idempotency_key`] (in the
//! scheduler's namespace, which API clients cannot write); then the row is marked
//! enqueued. A crash or a Redis failure in between leaves a `pending` row that the
//! next leader completes with the same key, so the job is still created once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use drover_entities::schedule_fire;
use drover_jobs::QueueName;
use drover_jobs::connect::Queues;
use drover_queue::{JobOptions, JobState, NewJob, QueueError};
use sea_orm::DatabaseConnection;

use crate::metrics;
use crate::plan::Overlap;
use crate::spec::{Spec, render_payload};
use crate::store::{self, NewFire};

/// How long a fire's idempotency key is remembered: longer than the scheduler ever
/// looks back ([`crate::plan::MAX_LOOKBACK`]), so a replayed fire finds its job.
pub const FIRE_KEY_TTL: Duration = Duration::from_secs(8 * 24 * 3600);

/// Something a fire needed was not there.
#[derive(Debug, thiserror::Error)]
pub enum FireError {
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("redis: {0}")]
    Queue(#[from] QueueError),
}

/// The idempotency key of a fire: `schedule:<name>:<fire key>`.
#[must_use]
pub fn idempotency_key(schedule: &str, fire_key: &str) -> String {
    format!("schedule:{schedule}:{fire_key}")
}

/// What became of a fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Enqueued as this job.
    Enqueued(schedule_fire::Model),
    /// Recorded as skipped.
    Skipped(schedule_fire::Model),
    /// Another scheduler had recorded this fire already.
    Taken,
}

/// Whether the job of the schedule's newest fire is still waiting, delayed or active;
/// its id if so.
async fn previous_still_running(
    db: &DatabaseConnection,
    queues: &Queues,
    schedule: &str,
) -> Result<Option<(String, JobState)>, FireError> {
    let Some(last) = store::last_with_job(db, schedule).await? else {
        return Ok(None);
    };
    let (Some(id), Ok(queue)) = (last.job_id, last.queue.parse::<QueueName>()) else {
        return Ok(None);
    };
    Ok(queues
        .get(queue)
        .get(&id)
        .await?
        .map(|j| j.state)
        .filter(|s| matches!(s, JobState::Waiting | JobState::Delayed | JobState::Active))
        .map(|s| (id, s)))
}

/// Enqueues the job of a claimed (pending) fire and marks it enqueued.
pub async fn enqueue_claimed(
    db: &DatabaseConnection,
    queues: &Queues,
    mut fire: schedule_fire::Model,
    now: impl Fn() -> DateTime<Utc>,
) -> Result<schedule_fire::Model, FireError> {
    let queue = fire
        .queue
        .parse::<QueueName>()
        .map_err(|e| FireError::Queue(QueueError::InvalidName(e.0)))?;
    let job = NewJob::raw(fire.payload.clone().unwrap_or_else(|| "{}".to_owned()))
        .with_options(JobOptions {
            idempotency_key: Some(idempotency_key(&fire.schedule_name, &fire.fire_key)),
            idempotency_ttl: Some(FIRE_KEY_TTL),
            ..Default::default()
        })
        .with_request_id(format!("schedule:{}", fire.schedule_name));
    let e = queues.get(queue).enqueue(job).await?;
    let at = now();
    store::complete(db, &fire.id, &e.id, at).await?;
    if e.created {
        ::metrics::counter!(drover_queue::metrics::ENQUEUED, "queue" => queue.as_str())
            .increment(1);
    }
    metrics::fired(&fire, at);
    fire.status = store::ENQUEUED.to_owned();
    fire.job_id = Some(e.id);
    fire.enqueued_at = Some(at);
    Ok(fire)
}

/// Fires `spec` for its scheduled time `at`: applies the overlap policy, records the
/// decision, and enqueues unless it was skipped or another scheduler got there first.
pub async fn scheduled(
    db: &DatabaseConnection,
    queues: &Queues,
    spec: &Spec,
    at: DateTime<Utc>,
    now: impl Fn() -> DateTime<Utc>,
) -> Result<Outcome, FireError> {
    let decision = match render_payload(spec.queue, &spec.name, &spec.payload, at) {
        Err(e) => Err(format!("invalid payload: {e}")),
        Ok(payload) => {
            let running = if spec.overlap == Overlap::Skip {
                previous_still_running(db, queues, &spec.name).await?
            } else {
                None
            };
            match running {
                Some((id, state)) => Err(format!(
                    "overlap: the previous fire's job {id} is still {state} (overlap skip)"
                )),
                None => Ok(payload.to_string()),
            }
        }
    };
    let claim = NewFire {
        schedule: spec.name.clone(),
        fire_key: store::fire_key(at),
        scheduled_at: at,
        manual: false,
        queue: spec.queue.as_str().to_owned(),
        decision,
    };
    let Some(row) = store::claim(db, claim, now()).await? else {
        return Ok(Outcome::Taken);
    };
    if row.status == store::SKIPPED {
        metrics::skipped(&spec.name, row.reason.as_deref().unwrap_or(""), 1);
        tracing::info!(schedule = spec.name, fire = %at, reason = row.reason.as_deref().unwrap_or(""), "fire skipped");
        return Ok(Outcome::Skipped(row));
    }
    let row = enqueue_claimed(db, queues, row, now).await?;
    tracing::info!(schedule = spec.name, fire = %at, job.id = row.job_id.as_deref().unwrap_or(""), "schedule fired");
    Ok(Outcome::Enqueued(row))
}

/// Records a fire at `at` as skipped for `reason` (`count` fires, for a summary).
pub async fn skip(
    db: &DatabaseConnection,
    spec: &Spec,
    at: DateTime<Utc>,
    reason: String,
    count: usize,
    now: DateTime<Utc>,
) -> Result<Outcome, FireError> {
    let claim = NewFire {
        schedule: spec.name.clone(),
        fire_key: store::fire_key(at),
        scheduled_at: at,
        manual: false,
        queue: spec.queue.as_str().to_owned(),
        decision: Err(reason),
    };
    Ok(match store::claim(db, claim, now).await? {
        Some(row) => {
            metrics::skipped(&spec.name, "missed", count);
            tracing::info!(schedule = spec.name, fire = %at, count, reason = row.reason.as_deref().unwrap_or(""), "missed fire skipped");
            Outcome::Skipped(row)
        }
        None => Outcome::Taken,
    })
}

/// Fires `spec` now, by hand (the API's trigger): recorded as manual, no overlap check.
pub async fn manual(
    db: &DatabaseConnection,
    queues: &Queues,
    spec: &Spec,
    now: impl Fn() -> DateTime<Utc>,
) -> Result<Result<schedule_fire::Model, crate::spec::SpecError>, FireError> {
    let at = now();
    let payload = match render_payload(spec.queue, &spec.name, &spec.payload, at) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let claim = NewFire {
        schedule: spec.name.clone(),
        fire_key: format!("manual:{}", ulid::Ulid::new()),
        scheduled_at: at,
        manual: true,
        queue: spec.queue.as_str().to_owned(),
        decision: Ok(payload.to_string()),
    };
    let row = store::claim(db, claim, at)
        .await?
        .ok_or_else(|| FireError::Db(sea_orm::DbErr::RecordNotInserted))?;
    Ok(Ok(enqueue_claimed(db, queues, row, now).await?))
}
