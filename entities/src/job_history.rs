//! A finished job, archived out of Redis by the queue's retention, with everything
//! `GET /jobs/{id}` shows of it.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "job_history")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub queue: String,
    /// `completed` or `failed`.
    pub state: String,
    /// JSON text.
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    /// JSON text.
    #[sea_orm(column_type = "Text", nullable)]
    pub result: Option<String>,
    /// JSON array text, one entry per failed attempt.
    #[sea_orm(column_type = "Text")]
    pub errors: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub failed_reason: Option<String>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub priority: i32,
    pub request_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    pub archived_at: DateTimeUtc,
    /// When it was due to run (its last run time).
    pub run_at: Option<DateTimeUtc>,
    /// JSON object: backoff, idempotency key, the job's own retention.
    #[sea_orm(column_type = "Text", nullable)]
    pub options: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub progress_message: Option<String>,
    /// The worker that ran its last attempt.
    pub worker: Option<String>,
    /// The API key that submitted it (`api_keys.id`); none for jobs the scheduler or
    /// the CLI enqueued. A submitter key reads only its own jobs.
    pub submitter_key_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
