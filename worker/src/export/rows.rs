//! What each export source reads: its columns, and one page of rows after a key.
//!
//! Pages are read by keyset (`WHERE key > last ORDER BY key LIMIT n`): each page costs
//! the same however deep into the table it is, and memory holds one page at a time.

use std::future::Future;

use chrono::{DateTime, SecondsFormat, Utc};
use drover_entities::{aggregate, analysis_summary, job_history};
use drover_jobs::kinds::ExportFilters;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Select,
};
use serde_json::{Value, json};

/// A row of an export source.
pub trait Row: Send + Sync + Sized + 'static {
    /// The CSV header: the column names, in order.
    const HEADER: &'static [&'static str];
    /// The keyset pagination key.
    type Key: Clone + Send + Sync + 'static;

    /// This row's key.
    fn key(&self) -> Self::Key;
    /// The CSV fields, in [`Row::HEADER`]'s order; null is empty.
    fn csv_record(&self) -> Vec<String>;
    /// The JSON line: an object with the header's names, JSON text columns parsed.
    fn json(&self) -> Value;
    /// The rows after `after` (from the first when `None`) that pass `filters`, at most `n`.
    fn page(
        db: &DatabaseConnection,
        filters: &ExportFilters,
        after: Option<Self::Key>,
        n: u64,
    ) -> impl Future<Output = Result<Vec<Self>, DbErr>> + Send;
    /// How many rows pass `filters`.
    fn count(
        db: &DatabaseConnection,
        filters: &ExportFilters,
    ) -> impl Future<Output = Result<u64, DbErr>> + Send;
}

/// A timestamp as the files write it: RFC 3339 in UTC, as precise as it is.
#[must_use]
pub fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn ts_opt(t: Option<&DateTime<Utc>>) -> String {
    t.map(ts).unwrap_or_default()
}

/// JSON text as a JSON value; text that is not JSON stays a string.
fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn history_filtered(filters: &ExportFilters) -> Select<job_history::Entity> {
    use job_history::Column as C;
    let mut q = job_history::Entity::find();
    if let Some(queue) = filters.queue {
        q = q.filter(C::Queue.eq(queue.as_str()));
    }
    if let Some(state) = &filters.state {
        q = q.filter(C::State.eq(state.as_str()));
    }
    if let Some(from) = filters.from {
        q = q.filter(C::FinishedAt.gte(from));
    }
    if let Some(to) = filters.to {
        q = q.filter(C::FinishedAt.lt(to));
    }
    q
}

impl Row for job_history::Model {
    const HEADER: &'static [&'static str] = &[
        "id",
        "queue",
        "state",
        "attempts",
        "max_attempts",
        "priority",
        "request_id",
        "failed_reason",
        "created_at",
        "started_at",
        "finished_at",
        "archived_at",
        "payload",
        "result",
        "errors",
    ];
    type Key = String;

    fn key(&self) -> String {
        self.id.clone()
    }

    fn csv_record(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.queue.clone(),
            self.state.clone(),
            self.attempts.to_string(),
            self.max_attempts.to_string(),
            self.priority.to_string(),
            self.request_id.clone().unwrap_or_default(),
            self.failed_reason.clone().unwrap_or_default(),
            ts(&self.created_at),
            ts_opt(self.started_at.as_ref()),
            ts_opt(self.finished_at.as_ref()),
            ts(&self.archived_at),
            self.payload.clone(),
            self.result.clone().unwrap_or_default(),
            self.errors.clone(),
        ]
    }

    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "queue": self.queue,
            "state": self.state,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "priority": self.priority,
            "request_id": self.request_id,
            "failed_reason": self.failed_reason,
            "created_at": ts(&self.created_at),
            "started_at": self.started_at.as_ref().map(ts),
            "finished_at": self.finished_at.as_ref().map(ts),
            "archived_at": ts(&self.archived_at),
            "payload": parsed(&self.payload),
            "result": self.result.as_deref().map(parsed),
            "errors": parsed(&self.errors),
        })
    }

    async fn page(
        db: &DatabaseConnection,
        filters: &ExportFilters,
        after: Option<String>,
        n: u64,
    ) -> Result<Vec<Self>, DbErr> {
        use job_history::Column as C;
        let mut q = history_filtered(filters);
        if let Some(after) = after {
            q = q.filter(C::Id.gt(after));
        }
        q.order_by_asc(C::Id).limit(n).all(db).await
    }

    async fn count(db: &DatabaseConnection, filters: &ExportFilters) -> Result<u64, DbErr> {
        history_filtered(filters).count(db).await
    }
}

fn aggregates_filtered(filters: &ExportFilters) -> Select<aggregate::Entity> {
    use aggregate::Column as C;
    let mut q = aggregate::Entity::find();
    if let Some(queue) = filters.queue {
        q = q
            .filter(C::Scope.eq("queue"))
            .filter(C::Subject.eq(queue.as_str()));
    }
    if let Some(from) = filters.from {
        q = q.filter(C::BucketStart.gte(from));
    }
    if let Some(to) = filters.to {
        q = q.filter(C::BucketStart.lt(to));
    }
    q
}

impl Row for aggregate::Model {
    const HEADER: &'static [&'static str] = &[
        "id",
        "bucket_start",
        "granularity",
        "scope",
        "subject",
        "metric",
        "value",
        "computed_at",
    ];
    type Key = i64;

    fn key(&self) -> i64 {
        self.id
    }

    fn csv_record(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            ts(&self.bucket_start),
            self.granularity.clone(),
            self.scope.clone(),
            self.subject.clone(),
            self.metric.clone(),
            self.value.to_string(),
            ts(&self.computed_at),
        ]
    }

    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "bucket_start": ts(&self.bucket_start),
            "granularity": self.granularity,
            "scope": self.scope,
            "subject": self.subject,
            "metric": self.metric,
            "value": self.value,
            "computed_at": ts(&self.computed_at),
        })
    }

    async fn page(
        db: &DatabaseConnection,
        filters: &ExportFilters,
        after: Option<i64>,
        n: u64,
    ) -> Result<Vec<Self>, DbErr> {
        use aggregate::Column as C;
        let mut q = aggregates_filtered(filters);
        if let Some(after) = after {
            q = q.filter(C::Id.gt(after));
        }
        q.order_by_asc(C::Id).limit(n).all(db).await
    }

    async fn count(db: &DatabaseConnection, filters: &ExportFilters) -> Result<u64, DbErr> {
        aggregates_filtered(filters).count(db).await
    }
}

fn summaries_filtered(filters: &ExportFilters) -> Select<analysis_summary::Entity> {
    use analysis_summary::Column as C;
    let mut q = analysis_summary::Entity::find();
    if let Some(job) = &filters.job_id {
        q = q.filter(C::JobId.eq(job.as_str()));
    }
    if let Some(from) = filters.from {
        q = q.filter(C::CreatedAt.gte(from));
    }
    if let Some(to) = filters.to {
        q = q.filter(C::CreatedAt.lt(to));
    }
    q
}

/// `analysis_results`: the per-column summaries of completed analyses (the per-row
/// scores are the analysis's own results file, served by `/analysis/{id}/results`).
impl Row for analysis_summary::Model {
    const HEADER: &'static [&'static str] = &[
        "job_id",
        "column",
        "rows",
        "positive",
        "neutral",
        "negative",
        "mean_compound",
        "histogram",
        "created_at",
    ];
    /// (job id, column): the table's primary key.
    type Key = (String, String);

    fn key(&self) -> (String, String) {
        (self.job_id.clone(), self.column_name.clone())
    }

    fn csv_record(&self) -> Vec<String> {
        vec![
            self.job_id.clone(),
            self.column_name.clone(),
            self.rows.to_string(),
            self.positive.to_string(),
            self.neutral.to_string(),
            self.negative.to_string(),
            self.mean_compound.to_string(),
            self.histogram.clone(),
            ts(&self.created_at),
        ]
    }

    fn json(&self) -> Value {
        json!({
            "job_id": self.job_id,
            "column": self.column_name,
            "rows": self.rows,
            "positive": self.positive,
            "neutral": self.neutral,
            "negative": self.negative,
            "mean_compound": self.mean_compound,
            "histogram": parsed(&self.histogram),
            "created_at": ts(&self.created_at),
        })
    }

    async fn page(
        db: &DatabaseConnection,
        filters: &ExportFilters,
        after: Option<(String, String)>,
        n: u64,
    ) -> Result<Vec<Self>, DbErr> {
        use analysis_summary::Column as C;
        let mut q = summaries_filtered(filters);
        if let Some((job, column)) = after {
            q = q.filter(
                Condition::any().add(C::JobId.gt(job.as_str())).add(
                    Condition::all()
                        .add(C::JobId.eq(job.as_str()))
                        .add(C::ColumnName.gt(column)),
                ),
            );
        }
        q.order_by_asc(C::JobId)
            .order_by_asc(C::ColumnName)
            .limit(n)
            .all(db)
            .await
    }

    async fn count(db: &DatabaseConnection, filters: &ExportFilters) -> Result<u64, DbErr> {
        summaries_filtered(filters).count(db).await
    }
}
