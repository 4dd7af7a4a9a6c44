//! Hourly and daily aggregates of the queues' counters (submitter keys).

use chrono::{DateTime, TimeZone, Utc};
use drover_entities::aggregate;
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::views::PageLinks;
use super::{QueueParam, queue_name};
use crate::auth::SubmitterKey;
use crate::error::ApiError;
use crate::openapi::ApiTags;
use crate::state::AppState;

/// The size of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "AggregateGranularity", rename_all = "lowercase")]
pub enum GranularityView {
    Hour,
    Day,
}

impl GranularityView {
    fn as_str(self) -> &'static str {
        match self {
            GranularityView::Hour => "hour",
            GranularityView::Day => "day",
        }
    }
}

/// One aggregated value.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Aggregate")]
pub struct AggregateView {
    pub bucket_start: DateTime<Utc>,
    /// `hour` or `day`.
    pub granularity: String,
    /// `queue` or `dataset`: what `subject` names.
    pub scope: String,
    /// The queue's name (or the dataset's id).
    pub subject: String,
    /// `started`, `completed`, `failed`, `retried`, `stalled`, `run_ms_sum`,
    /// `wait_ms_sum`, `run_ms_avg` or `wait_ms_avg`.
    pub metric: String,
    pub value: f64,
    /// When the aggregation job computed it.
    pub computed_at: DateTime<Utc>,
}

impl From<aggregate::Model> for AggregateView {
    fn from(m: aggregate::Model) -> Self {
        Self {
            bucket_start: m.bucket_start,
            granularity: m.granularity,
            scope: m.scope,
            subject: m.subject,
            metric: m.metric,
            value: m.value,
            computed_at: m.computed_at,
        }
    }
}

/// A page of aggregates.
#[derive(Debug, Clone, Object)]
pub struct AggregatePage {
    /// Oldest bucket first.
    pub aggregates: Vec<AggregateView>,
    /// Pass it back as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
    pub links: PageLinks,
}

#[derive(ApiResponse)]
enum ListAggregatesResponse {
    /// A page of aggregates.
    #[oai(status = 200)]
    Ok(Json<AggregatePage>),
}

fn default_limit() -> u32 {
    500
}

/// The aggregates.
pub struct AggregatesApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Aggregates")]
impl AggregatesApi {
    /// List aggregates
    ///
    /// Values of buckets starting in `[from, to)`, oldest first, filtered by metric,
    /// queue and granularity. The aggregation job writes them (`aggregation` queue).
    #[oai(path = "/aggregates", method = "get", operation_id = "list_aggregates")]
    #[allow(clippy::too_many_arguments)]
    async fn list_aggregates(
        &self,
        _key: SubmitterKey,
        state: Data<&AppState>,
        /// Only this metric.
        #[oai(validator(pattern = r"^[a-z0-9_]{1,64}$"))]
        metric: Query<Option<String>>,
        /// Only this queue.
        queue: Query<Option<QueueParam>>,
        /// Only buckets of this size.
        granularity: Query<Option<GranularityView>>,
        /// Buckets starting at or after this (RFC 3339).
        from: Query<Option<DateTime<Utc>>>,
        /// Buckets starting before this (RFC 3339).
        to: Query<Option<DateTime<Utc>>>,
        /// The `next_cursor` of the previous page.
        #[oai(validator(pattern = r"^[0-9]{1,15}_[0-9]{1,19}$"))]
        cursor: Query<Option<String>>,
        /// Values per page, 1 to 5000 (default 500).
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "5000"))
        )]
        limit: Query<u32>,
    ) -> Result<ListAggregatesResponse, ApiError> {
        use aggregate::Column as C;
        if let (Some(f), Some(t)) = (from.0, to.0)
            && f >= t
        {
            return Err(ApiError::unprocessable("to", "must be after from"));
        }
        let mut q = aggregate::Entity::find();
        let mut query = Vec::new();
        if let Some(m) = &metric.0 {
            q = q.filter(C::Metric.eq(m.as_str()));
            query.push(format!("metric={m}"));
        }
        if let Some(p) = &queue.0 {
            let name = queue_name(&p.0)
                .map_err(|_| ApiError::validation("queue", format!("no queue named {:?}", p.0)))?;
            q = q
                .filter(C::Scope.eq("queue"))
                .filter(C::Subject.eq(name.as_str()));
            query.push(format!("queue={name}"));
        }
        if let Some(g) = granularity.0 {
            q = q.filter(C::Granularity.eq(g.as_str()));
            query.push(format!("granularity={}", g.as_str()));
        }
        if let Some(f) = from.0 {
            q = q.filter(C::BucketStart.gte(f));
            query.push(format!(
                "from={}",
                super::views::encode_query(&f.to_rfc3339())
            ));
        }
        if let Some(t) = to.0 {
            q = q.filter(C::BucketStart.lt(t));
            query.push(format!(
                "to={}",
                super::views::encode_query(&t.to_rfc3339())
            ));
        }
        if let Some(c) = &cursor.0 {
            let (ms, id) = c
                .split_once('_')
                .and_then(|(a, b)| Some((a.parse::<i64>().ok()?, b.parse::<i64>().ok()?)))
                .ok_or_else(|| ApiError::validation("cursor", "pass back a next_cursor"))?;
            let b = Utc
                .timestamp_millis_opt(ms)
                .single()
                .ok_or_else(|| ApiError::validation("cursor", "pass back a next_cursor"))?;
            q = q.filter(
                Condition::any()
                    .add(C::BucketStart.gt(b))
                    .add(Condition::all().add(C::BucketStart.eq(b)).add(C::Id.gt(id))),
            );
        }
        let mut rows = q
            .order_by_asc(C::BucketStart)
            .order_by_asc(C::Id)
            .limit(u64::from(limit.0) + 1)
            .all(state.db())
            .await?;
        let more = rows.len() > limit.0 as usize;
        rows.truncate(limit.0 as usize);
        let next_cursor = more
            .then(|| {
                rows.last()
                    .map(|r| format!("{}_{}", r.bucket_start.timestamp_millis(), r.id))
            })
            .flatten();
        let next = next_cursor.as_ref().map(|c| {
            query.push(format!("limit={}", limit.0));
            query.push(format!("cursor={c}"));
            format!("/api/v1/aggregates?{}", query.join("&"))
        });
        Ok(ListAggregatesResponse::Ok(Json(AggregatePage {
            aggregates: rows.into_iter().map(Into::into).collect(),
            next_cursor,
            links: PageLinks { next },
        })))
    }
}
