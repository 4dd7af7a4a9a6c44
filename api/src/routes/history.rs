//! The archive of finished jobs (`job_history`), listed newest first with a cursor.
//!
//! The queue's retention moves finished jobs out of Redis into the archive; this is
//! where a client finds them again as a list (`GET /jobs/{id}` finds one by id).
//! Submitter keys may read it, as they may read jobs.

use chrono::{DateTime, Utc};
use drover_entities::job_history::{self, Column};
use drover_jobs::QueueName;
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::views::{JobPage, PageLinks, at, encode_query};
use crate::auth::SubmitterKey;
use crate::error::ApiError;
use crate::openapi::ApiTags;
use crate::state::AppState;

#[derive(ApiResponse)]
enum HistoryResponse {
    /// A page of archived jobs, newest first.
    #[oai(status = 200)]
    Ok(Json<JobPage>),
}

/// The archive resource.
pub struct HistoryApi;

fn default_limit() -> u32 {
    50
}

/// Largest page of the archive.
const MAX_LIMIT: u32 = 1000;

/// The filters of a listing, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryFilter {
    pub queue: Option<QueueName>,
    pub state: Option<&'static str>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// After this (finished at in ms, id), in listing order.
    pub after: Option<(i64, String)>,
    /// Only the jobs this key submitted, in its queues (a submitter key's listing);
    /// `None` for an admin key: everything.
    pub reader: Option<(i64, Option<Vec<QueueName>>)>,
}

impl HistoryFilter {
    /// Checks the query; a 400 names the parameter at fault.
    pub fn parse(
        queue: Option<&str>,
        state: Option<&str>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<Self, ApiError> {
        let queue = match queue.filter(|q| !q.is_empty()) {
            None => None,
            Some(q) => Some(
                q.parse::<QueueName>()
                    .map_err(|e| ApiError::validation("queue", e.to_string()))?,
            ),
        };
        let state = match state.filter(|s| !s.is_empty()) {
            None => None,
            Some("completed") => Some("completed"),
            Some("failed") => Some("failed"),
            Some(other) => {
                return Err(ApiError::validation(
                    "state",
                    format!("unknown state {other:?}: the archive holds completed and failed jobs"),
                ));
            }
        };
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return Err(ApiError::unprocessable("from", "must be before to"));
        }
        let after =
            match cursor.filter(|c| !c.is_empty()) {
                None => None,
                Some(c) => Some(parse_cursor(c).ok_or_else(|| {
                    ApiError::validation("cursor", "is not one this API returned")
                })?),
            };
        Ok(Self {
            queue,
            state,
            from,
            to,
            after,
            reader: None,
        })
    }
}

/// `<finished at, ms>|<id>`.
fn parse_cursor(c: &str) -> Option<(i64, String)> {
    let (ms, id) = c.split_once('|')?;
    let ms: i64 = ms.parse().ok()?;
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| (ms, id.to_owned()))
}

/// A page of the archive: `limit` rows after the filter's cursor, newest first, and
/// the cursor of the next page if there is one.
pub async fn page(
    db: &sea_orm::DatabaseConnection,
    f: &HistoryFilter,
    limit: u32,
) -> Result<(Vec<job_history::Model>, Option<String>), sea_orm::DbErr> {
    let mut q = job_history::Entity::find();
    if let Some(queue) = f.queue {
        q = q.filter(Column::Queue.eq(queue.as_str()));
    }
    if let Some((key_id, queues)) = &f.reader {
        q = q.filter(Column::SubmitterKeyId.eq(*key_id));
        if let Some(queues) = queues {
            q = q.filter(Column::Queue.is_in(queues.iter().map(|q| q.as_str())));
        }
    }
    if let Some(state) = f.state {
        q = q.filter(Column::State.eq(state));
    }
    if let Some(from) = f.from {
        q = q.filter(Column::FinishedAt.gte(from));
    }
    if let Some(to) = f.to {
        q = q.filter(Column::FinishedAt.lt(to));
    }
    if let Some((ms, id)) = &f.after {
        let t = at(*ms);
        q = q.filter(
            Condition::any().add(Column::FinishedAt.lt(t)).add(
                Condition::all()
                    .add(Column::FinishedAt.eq(t))
                    .add(Column::Id.lt(id.as_str())),
            ),
        );
    }
    let mut rows = q
        .order_by_desc(Column::FinishedAt)
        .order_by_desc(Column::Id)
        .limit(u64::from(limit) + 1)
        .all(db)
        .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = more.then(|| rows.last()).flatten().map(|r| {
        format!(
            "{}|{}",
            r.finished_at.map_or(0, |t| t.timestamp_millis()),
            r.id
        )
    });
    Ok((rows, next))
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Jobs")]
impl HistoryApi {
    /// List archived jobs
    ///
    /// Finished jobs that the queue's retention moved out of Redis into the database,
    /// newest first (by finish time, then id); a submitter key sees only the jobs it
    /// submitted, on its queues. Filter by queue, state (`completed` or
    /// `failed`) and finish time (`from` inclusive, `to` exclusive). Pass `next_cursor`
    /// back as `cursor` for the next page.
    #[oai(path = "/history", method = "get", operation_id = "list_history")]
    #[allow(clippy::too_many_arguments)]
    async fn list_history(
        &self,
        key: SubmitterKey,
        state: Data<&AppState>,
        /// Only this queue: `export`, `analysis`, `aggregation` or `cleanup`.
        #[oai(validator(pattern = r"^(?:export|analysis|aggregation|cleanup)$"))]
        queue: Query<Option<String>>,
        /// Only this state: `completed` or `failed`.
        #[oai(name = "state", validator(pattern = r"^(?:completed|failed)$"))]
        job_state: Query<Option<String>>,
        /// Finished at or after this time (RFC 3339).
        from: Query<Option<DateTime<Utc>>>,
        /// Finished before this time (RFC 3339; after `from`, else 422).
        to: Query<Option<DateTime<Utc>>>,
        /// The `next_cursor` of the previous page (opaque: pass it back as it came).
        #[oai(validator(max_length = 200, pattern = r"^-?[0-9]{1,18}\|[0-9A-Za-z_-]{1,64}$"))]
        cursor: Query<Option<String>>,
        /// Jobs per page, 1 to 1000 (default 50).
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<u32>,
    ) -> Result<HistoryResponse, ApiError> {
        let mut f = HistoryFilter::parse(
            queue.0.as_deref(),
            job_state.0.as_deref(),
            from.0,
            to.0,
            cursor.0.as_deref(),
        )?;
        if !key.0.is_admin() {
            f.reader = Some((key.0.key_id, key.0.queues.as_ref().map(|q| q.to_vec())));
        }
        let limit = limit.0.clamp(1, MAX_LIMIT);
        let (rows, next_cursor) = page(state.db(), &f, limit).await?;
        let next = next_cursor.as_ref().map(|c| {
            let mut url = format!("/api/v1/history?limit={limit}&cursor={}", encode_query(c));
            if let Some(q) = f.queue {
                url.push_str(&format!("&queue={q}"));
            }
            if let Some(s) = f.state {
                url.push_str(&format!("&state={s}"));
            }
            for (name, t) in [("from", f.from), ("to", f.to)] {
                if let Some(t) = t {
                    url.push_str(&format!("&{name}={}", encode_query(&t.to_rfc3339())));
                }
            }
            url
        });
        Ok(HistoryResponse::Ok(Json(JobPage {
            jobs: rows.into_iter().map(Into::into).collect(),
            next_cursor,
            links: PageLinks { next },
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_and_filters_are_checked() {
        assert_eq!(parse_cursor("17|01AB"), Some((17, "01AB".to_owned())));
        for bad in ["", "x|01AB", "17", "17|", "17|../x", "1.5|a"] {
            assert_eq!(parse_cursor(bad), None, "{bad}");
        }
        assert!(HistoryFilter::parse(Some("mail"), None, None, None, None).is_err());
        assert!(HistoryFilter::parse(None, Some("waiting"), None, None, None).is_err());
        let t = at(1000);
        assert!(HistoryFilter::parse(None, None, Some(t), Some(t), None).is_err());
        let f = HistoryFilter::parse(Some("export"), Some("failed"), None, Some(t), None).unwrap();
        assert_eq!(f.queue, Some(QueueName::Export));
        assert_eq!(f.state, Some("failed"));
    }
}
