//! A cron schedule: what fires when, into which queue, with which payload template.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "schedules")]
pub struct Model {
    /// Stable name: it keys the fire records and each fire's idempotency.
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    /// A 5-field crontab, or 6 fields with seconds first.
    pub cron: String,
    /// IANA timezone the expression is read in.
    pub timezone: String,
    pub queue: String,
    /// The payload template, JSON text.
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    /// `skip`, `once` or `all`.
    pub missed_fire: String,
    /// Under `all`, at most this many missed fires run.
    pub catch_up_limit: i32,
    /// `allow` or `skip`.
    pub overlap: String,
    pub enabled: bool,
    /// Fires scheduled before this are not owed: set when the schedule is created, and
    /// again when its timing changes or it is enabled, so an edit never replays a past
    /// that the new timing never had.
    pub anchor_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
