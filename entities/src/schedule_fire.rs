//! One fire of a schedule: enqueued, pending, or skipped and why.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "schedule_fires")]
pub struct Model {
    /// A ULID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub schedule_name: String,
    /// Unique per schedule: the scheduled time in ms for a scheduled fire,
    /// `manual:<ulid>` for a trigger.
    pub fire_key: String,
    /// When it was due (for a trigger, when it was triggered).
    pub scheduled_at: DateTimeUtc,
    /// Triggered through the API rather than by the clock.
    pub manual: bool,
    /// `pending` (decided, not yet enqueued), `enqueued` or `skipped`.
    pub status: String,
    /// Why it was skipped.
    #[sea_orm(column_type = "Text", nullable)]
    pub reason: Option<String>,
    /// The queue the job went (or goes) to.
    pub queue: String,
    /// The rendered payload, JSON text (absent for a skip).
    #[sea_orm(column_type = "Text", nullable)]
    pub payload: Option<String>,
    pub job_id: Option<String>,
    pub enqueued_at: Option<DateTimeUtc>,
    pub recorded_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
