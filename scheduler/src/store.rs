//! The schedules and their fires in the database: plain functions over a connection,
//! used by the scheduler and by the API.
//!
//! A fire row is the decision about one scheduled time. It is inserted once
//! (`(schedule_name, fire_key)` is unique), before any job is enqueued: whichever
//! scheduler inserts it decides, and a second scheduler that reaches the same time (a
//! split brain) finds the row and does nothing. A `pending` row was decided but not
//! yet enqueued; any leader completes it, with the fire's own idempotency key, so the
//! job is created once.

use chrono::{DateTime, Utc};
use drover_entities::{schedule, schedule_fire};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, TransactionTrait, TryInsertResult,
};

pub use sea_orm::DbErr;

/// Status of a fire that was decided but whose job is not enqueued yet.
pub const PENDING: &str = "pending";
/// Status of a fire whose job was enqueued.
pub const ENQUEUED: &str = "enqueued";
/// Status of a fire that was skipped (see its reason).
pub const SKIPPED: &str = "skipped";

/// Every schedule, by name.
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<schedule::Model>, DbErr> {
    schedule::Entity::find()
        .order_by_asc(schedule::Column::Name)
        .all(db)
        .await
}

/// One schedule.
pub async fn get(db: &impl ConnectionTrait, name: &str) -> Result<Option<schedule::Model>, DbErr> {
    schedule::Entity::find_by_id(name.to_owned()).one(db).await
}

/// Inserts a schedule; false if one of that name exists.
pub async fn create(db: &impl ConnectionTrait, m: schedule::Model) -> Result<bool, DbErr> {
    let res = schedule::Entity::insert(m.into_active_model())
        .on_conflict_do_nothing_on([schedule::Column::Name])
        .exec_without_returning(db)
        .await?;
    Ok(matches!(res, TryInsertResult::Inserted(n) if n > 0))
}

/// Writes every field of an existing schedule.
pub async fn update(db: &impl ConnectionTrait, m: schedule::Model) -> Result<(), DbErr> {
    let am = m.into_active_model().reset_all();
    am.update(db).await.map(drop)
}

/// Deletes a schedule and its fire records; false if there was none.
pub async fn delete(db: &DatabaseConnection, name: &str) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    schedule_fire::Entity::delete_many()
        .filter(schedule_fire::Column::ScheduleName.eq(name))
        .exec(&txn)
        .await?;
    let res = schedule::Entity::delete_by_id(name.to_owned())
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(res.rows_affected > 0)
}

/// The latest scheduled time decided for a schedule by the clock (triggers aside).
pub async fn last_scheduled(
    db: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    Ok(schedule_fire::Entity::find()
        .filter(schedule_fire::Column::ScheduleName.eq(name))
        .filter(schedule_fire::Column::Manual.eq(false))
        .order_by_desc(schedule_fire::Column::ScheduledAt)
        .one(db)
        .await?
        .map(|f| f.scheduled_at))
}

/// The newest fire records of a schedule, newest first.
pub async fn recent(
    db: &impl ConnectionTrait,
    name: &str,
    limit: u64,
) -> Result<Vec<schedule_fire::Model>, DbErr> {
    schedule_fire::Entity::find()
        .filter(schedule_fire::Column::ScheduleName.eq(name))
        .order_by_desc(schedule_fire::Column::RecordedAt)
        .order_by_desc(schedule_fire::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// The newest fire of a schedule that has a job (enqueued or pending).
pub async fn last_with_job(
    db: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<schedule_fire::Model>, DbErr> {
    schedule_fire::Entity::find()
        .filter(schedule_fire::Column::ScheduleName.eq(name))
        .filter(schedule_fire::Column::JobId.is_not_null())
        .order_by_desc(schedule_fire::Column::EnqueuedAt)
        .order_by_desc(schedule_fire::Column::Id)
        .one(db)
        .await
}

/// A fire record about to be claimed.
#[derive(Debug, Clone)]
pub struct NewFire {
    pub schedule: String,
    pub fire_key: String,
    pub scheduled_at: DateTime<Utc>,
    pub manual: bool,
    pub queue: String,
    /// `Ok(payload)` to fire (the row starts pending), `Err(reason)` to skip.
    pub decision: Result<String, String>,
}

/// Records the decision about one fire, unless one was recorded already; the row if
/// this call made it.
pub async fn claim(
    db: &impl ConnectionTrait,
    f: NewFire,
    now: DateTime<Utc>,
) -> Result<Option<schedule_fire::Model>, DbErr> {
    let (status, payload, reason) = match f.decision {
        Ok(p) => (PENDING, Some(p), None),
        Err(r) => (SKIPPED, None, Some(r)),
    };
    let m = schedule_fire::Model {
        id: ulid::Ulid::new().to_string(),
        schedule_name: f.schedule,
        fire_key: f.fire_key,
        scheduled_at: f.scheduled_at,
        manual: f.manual,
        status: status.to_owned(),
        reason,
        queue: f.queue,
        payload,
        job_id: None,
        enqueued_at: None,
        recorded_at: now,
    };
    let res = schedule_fire::Entity::insert(m.clone().into_active_model())
        .on_conflict_do_nothing_on([
            schedule_fire::Column::ScheduleName,
            schedule_fire::Column::FireKey,
        ])
        .exec_without_returning(db)
        .await?;
    Ok(matches!(res, TryInsertResult::Inserted(n) if n > 0).then_some(m))
}

/// Marks a pending fire enqueued, as job `job_id`.
pub async fn complete(
    db: &impl ConnectionTrait,
    id: &str,
    job_id: &str,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    schedule_fire::Entity::update_many()
        .col_expr(schedule_fire::Column::Status, Expr::value(ENQUEUED))
        .col_expr(schedule_fire::Column::JobId, Expr::value(job_id))
        .col_expr(schedule_fire::Column::EnqueuedAt, Expr::value(at))
        .filter(schedule_fire::Column::Id.eq(id))
        .filter(schedule_fire::Column::Status.eq(PENDING))
        .exec(db)
        .await
        .map(drop)
}

/// Fires decided but not enqueued (a scheduler stopped, or Redis failed, in between).
pub async fn pending(
    db: &impl ConnectionTrait,
    limit: u64,
) -> Result<Vec<schedule_fire::Model>, DbErr> {
    schedule_fire::Entity::find()
        .filter(schedule_fire::Column::Status.eq(PENDING))
        .order_by_asc(schedule_fire::Column::ScheduledAt)
        .limit(limit)
        .all(db)
        .await
}

/// Deletes a schedule's fire records older than `before`, always keeping its newest
/// scheduled one (the point catch-up starts from). Returns how many went.
pub async fn prune(
    db: &impl ConnectionTrait,
    name: &str,
    before: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let Some(newest) = last_scheduled(db, name).await? else {
        return Ok(0);
    };
    let cut = before.min(newest);
    let res = schedule_fire::Entity::delete_many()
        .filter(schedule_fire::Column::ScheduleName.eq(name))
        .filter(schedule_fire::Column::ScheduledAt.lt(cut))
        .filter(schedule_fire::Column::Status.ne(PENDING))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// Builds a schedule row.
#[must_use]
pub fn row(
    spec: &crate::spec::Spec,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> schedule::Model {
    schedule::Model {
        name: spec.name.clone(),
        cron: spec.cron.clone(),
        timezone: spec.timezone.clone(),
        queue: spec.queue.as_str().to_owned(),
        payload: spec.payload.to_string(),
        missed_fire: spec.missed_fire.as_str().to_owned(),
        catch_up_limit: i32::try_from(spec.catch_up_limit).unwrap_or(i32::MAX),
        overlap: spec.overlap.as_str().to_owned(),
        enabled: spec.enabled,
        anchor_at: spec.anchor_at,
        created_at,
        updated_at: now,
    }
}

/// The fire key of a scheduled (not manual) fire: its time in ms.
#[must_use]
pub fn fire_key(at: DateTime<Utc>) -> String {
    at.timestamp_millis().to_string()
}
