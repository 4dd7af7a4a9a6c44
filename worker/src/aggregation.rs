//! Aggregation: roll the per-minute queue counters in Redis up into one hour or one day
//! of the `aggregates` table.
//!
//! Plain code over a database connection and the queue handles; the `aggregation` job
//! handler only unpacks its payload and calls [`run`].
//!
//! For each queue, the bucket's minutes (`{ns:q}:stats:<minute>`, written by the fetch,
//! ack and rescue scripts) are read in one pipeline and summed. Each metric is one row,
//! keyed by (granularity, bucket, `queue`, queue name, metric) and upserted: running a
//! bucket again writes the same values, and leaves `computed_at` alone where the value
//! did not change, so a second run changes nothing. A queue with no activity gets rows
//! of zeros, so "nothing happened" reads differently from "not computed".
//!
//! A bucket that starts before the counters' window (`DROVER_STATS_WINDOW_HOURS`) is
//! refused: its counters are partly gone, and recomputing it would overwrite good rows
//! with smaller numbers.
//!
//! Metrics per queue: `started`, `completed`, `failed`, `retried`, `stalled` (counts),
//! `run_ms_sum` and `wait_ms_sum` (ms), `run_ms_avg` (run time per finished attempt:
//! `run_ms_sum / (completed + failed + retried)`) and `wait_ms_avg` (`wait_ms_sum /
//! started`), 0 when nothing ran. The analysis summaries join them once the analysis
//! tables exist (the result says `analysis: "not available"` until then).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use drover_entities::aggregate;
use drover_jobs::kinds::Granularity;
use drover_queue::{Queue, QueueError};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait};

/// The counters summed over a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    pub retried: u64,
    pub stalled: u64,
    pub run_ms: u64,
    pub wait_ms: u64,
}

impl Totals {
    /// The metric rows of these totals: `(metric, value)`.
    #[must_use]
    pub fn metrics(&self) -> Vec<(&'static str, f64)> {
        let avg = |sum: u64, n: u64| if n == 0 { 0.0 } else { sum as f64 / n as f64 };
        let finished = self.completed + self.failed + self.retried;
        vec![
            ("started", self.started as f64),
            ("completed", self.completed as f64),
            ("failed", self.failed as f64),
            ("retried", self.retried as f64),
            ("stalled", self.stalled as f64),
            ("run_ms_sum", self.run_ms as f64),
            ("wait_ms_sum", self.wait_ms as f64),
            ("run_ms_avg", avg(self.run_ms, finished)),
            ("wait_ms_avg", avg(self.wait_ms, self.started)),
        ]
    }
}

/// What one run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The totals of each queue.
    pub queues: Vec<(String, Totals)>,
    /// Rows written (inserted or updated).
    pub rows: u64,
}

/// Why an aggregation failed.
#[derive(Debug, thiserror::Error)]
pub enum AggregationError {
    #[error("read the counters: {0}")]
    Redis(#[from] QueueError),
    #[error("write the aggregates: {0}")]
    Db(#[from] DbErr),
    #[error("{0}")]
    Expired(String),
}

impl AggregationError {
    /// Whether retrying cannot help.
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        matches!(self, AggregationError::Expired(_))
    }
}

/// Sums the minutes `[first, end)` (minute numbers since the epoch) of one queue.
pub async fn totals(queue: &Queue, first: i64, end: i64) -> Result<Totals, QueueError> {
    let mut pipe = redis::pipe();
    for m in first..end {
        pipe.cmd("HGETALL").arg(queue.keys().stats(m));
    }
    let maps: Vec<HashMap<String, u64>> = queue.redis().pipe(&pipe).await?;
    let mut t = Totals::default();
    for f in maps {
        let g = |k: &str| f.get(k).copied().unwrap_or(0);
        t.started += g("started");
        t.completed += g("completed");
        t.failed += g("failed");
        t.retried += g("retried");
        t.stalled += g("stalled");
        t.run_ms += g("run_ms");
        t.wait_ms += g("wait_ms");
    }
    Ok(t)
}

/// Computes bucket `start` of `granularity` for `queues` and upserts its rows.
///
/// # Errors
/// [`AggregationError::Expired`] (permanent) when the bucket starts before `now -
/// stats_window`; Redis or the database otherwise (retryable).
pub async fn run(
    db: &DatabaseConnection,
    queues: &[Queue],
    granularity: Granularity,
    start: DateTime<Utc>,
    stats_window: Duration,
    now: DateTime<Utc>,
) -> Result<Summary, AggregationError> {
    let window = chrono::Duration::from_std(stats_window).unwrap_or(chrono::Duration::hours(48));
    if start < now - window {
        return Err(AggregationError::Expired(format!(
            "the counters of buckets before {} are gone (they are kept {} h, \
             DROVER_STATS_WINDOW_HOURS); the stored aggregates of this bucket are left as they are",
            (now - window).to_rfc3339(),
            window.num_hours()
        )));
    }
    let first = start.timestamp().div_euclid(60);
    let end = (start + granularity.duration()).timestamp().div_euclid(60);
    let mut summary = Summary {
        queues: Vec::new(),
        rows: 0,
    };
    let mut rows = Vec::new();
    for q in queues {
        let t = totals(q, first, end).await?;
        for (metric, value) in t.metrics() {
            rows.push(aggregate::ActiveModel {
                bucket_start: Set(start),
                granularity: Set(granularity.as_str().to_owned()),
                scope: Set("queue".to_owned()),
                subject: Set(q.name().to_owned()),
                metric: Set(metric.to_owned()),
                value: Set(value),
                computed_at: Set(now),
                ..Default::default()
            });
        }
        summary.queues.push((q.name().to_owned(), t));
    }
    summary.rows = rows.len() as u64;
    upsert(db, rows).await?;
    Ok(summary)
}

async fn upsert(db: &DatabaseConnection, rows: Vec<aggregate::ActiveModel>) -> Result<(), DbErr> {
    use aggregate::Column as C;
    if rows.is_empty() {
        return Ok(());
    }
    // Keep `computed_at` where the value is unchanged, so a rerun changes nothing.
    let computed_at = Expr::cust(
        "CASE WHEN aggregates.value = excluded.value THEN aggregates.computed_at \
         ELSE excluded.computed_at END",
    );
    aggregate::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([
                C::Granularity,
                C::BucketStart,
                C::Scope,
                C::Subject,
                C::Metric,
            ])
            .update_column(C::Value)
            .value(C::ComputedAt, computed_at)
            .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .map(drop)
}
