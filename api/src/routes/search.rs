//! Searching a queue's jobs on the server: by exact id, by text in the payload or the
//! last error, and by creation time; in Redis and then in the archive (`job_history`).
//!
//! Redis has no index over payloads, so a text search reads jobs page by page, the way
//! the listing does (one short script per page of [`SCAN_PAGE`] jobs): no call ever
//! runs a script over a whole queue, and one search call examines at most
//! `DROVER_SEARCH_SCAN_MAX` jobs (Redis and archive together), then answers with what
//! it found and a cursor to continue. The archive is read the same way, newest first,
//! so both stores are searched with the same matching rules on either database engine.

use chrono::{DateTime, Utc};
use drover_jobs::QueueName;
use drover_queue::JobState;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::QueueParam;
use super::history::{HistoryFilter, page};
use super::lookup::find_in_queue;
use super::views::JobView;
use crate::auth::{Principal, SubmitterKey};
use crate::error::ApiError;
use crate::openapi::ApiTags;
use crate::state::AppState;

/// Jobs read from Redis (or rows from the archive) per round trip.
pub const SCAN_PAGE: usize = 200;
/// The states searched, in this order, before the archive.
const STATES: [JobState; 5] = [
    JobState::Waiting,
    JobState::Delayed,
    JobState::Active,
    JobState::Failed,
    JobState::Completed,
];

/// What a search found.
#[derive(Debug, Clone, Object)]
pub struct SearchResult {
    /// The matching jobs, in the order they were found.
    pub jobs: Vec<JobView>,
    /// How many jobs this call examined (at most `DROVER_SEARCH_SCAN_MAX`).
    pub examined: u64,
    /// Pass as `cursor` to continue the search; absent when every job was examined.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
enum SearchResponse {
    /// What this call found, and where to continue.
    #[oai(status = 200)]
    Ok(Json<SearchResult>),
}

/// Where a search is: a state of the queue in Redis and its listing cursor, or the
/// archive and its cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Redis { state: usize, after: String },
    Archive { after: String },
}

impl Phase {
    fn parse(c: &str) -> Option<Self> {
        let (kind, rest) = c.split_once(':')?;
        let ok = |s: &str| {
            s.len() <= 120
                && s.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'|' | b'.' | b'-' | b'_' | b'+')
                })
        };
        match kind {
            "h" if ok(rest) => Some(Phase::Archive {
                after: rest.to_owned(),
            }),
            k if k.starts_with('r') && ok(rest) => {
                let state: usize = k[1..].parse().ok()?;
                (state < STATES.len()).then(|| Phase::Redis {
                    state,
                    after: rest.to_owned(),
                })
            }
            _ => None,
        }
    }

    fn encode(&self) -> String {
        match self {
            Phase::Redis { state, after } => format!("r{state}:{after}"),
            Phase::Archive { after } => format!("h:{after}"),
        }
    }
}

/// The text and time filters of a search.
struct Matcher {
    text: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

impl Matcher {
    /// Whether `job` matches: its payload or last error holds the text (ignoring
    /// case), and it was created within the range.
    fn matches(&self, job: &JobView) -> bool {
        if self.from.is_some_and(|f| job.created_at < f)
            || self.to.is_some_and(|t| job.created_at >= t)
        {
            return false;
        }
        let Some(text) = &self.text else {
            return true;
        };
        let holds = |s: &str| s.to_lowercase().contains(text.as_str());
        job.id.eq_ignore_ascii_case(text)
            || holds(&job.payload.to_string())
            || job.errors.last().is_some_and(|e| holds(&e.error))
    }
}

/// The search resource.
pub struct SearchApi;

fn default_limit() -> u32 {
    50
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Jobs")]
impl SearchApi {
    /// Search a queue's jobs
    ///
    /// By exact job `id` (in Redis, then the archive), or by `q`: text found, ignoring
    /// case, in the payload or the last attempt's error; with `from`/`to`, only jobs
    /// created in that range. Redis is read page by page and then the archive, and one
    /// call examines at most `DROVER_SEARCH_SCAN_MAX` jobs: pass `next_cursor` back as
    /// `cursor` to go on. A call may answer fewer than `limit` jobs (even none) and a
    /// cursor; the search is over when no cursor comes back.
    #[oai(
        path = "/queues/:queue/search",
        method = "get",
        operation_id = "search_jobs"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn search(
        &self,
        key: SubmitterKey,
        state: Data<&AppState>,
        /// `export`, `analysis`, `aggregation` or `cleanup`.
        queue: Path<QueueParam>,
        /// An exact job id.
        #[oai(validator(min_length = 1, max_length = 64))]
        id: Query<Option<String>>,
        /// Text to find in the payload or the last error (at least 2 characters).
        #[oai(validator(max_length = 200))]
        q: Query<Option<String>>,
        /// Created at or after this time (RFC 3339).
        from: Query<Option<DateTime<Utc>>>,
        /// Created before this time (RFC 3339).
        to: Query<Option<DateTime<Utc>>>,
        /// The `next_cursor` of the previous call (opaque: pass it back as it came).
        #[oai(validator(
            max_length = 200,
            pattern = r"^(?:|r[0-4]:(?:|-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\|[0-9A-Za-z_-]{1,64})|h:(?:|-?[0-9]{1,18}\|[0-9A-Za-z_-]{1,64}))$"
        ))]
        cursor: Query<Option<String>>,
        /// Most jobs to answer, 1 to 200 (default 50).
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<u32>,
    ) -> Result<SearchResponse, ApiError> {
        let name = queue.0.queue()?;
        let key = key.0;
        if let Some(id) = id.0 {
            let jobs: Vec<JobView> = find_in_queue(&state, &key, name, &id)
                .await?
                .into_iter()
                .collect();
            return Ok(SearchResponse::Ok(Json(SearchResult {
                examined: jobs.len() as u64,
                jobs,
                next_cursor: None,
            })));
        }
        let text =
            q.0.map(|t| t.trim().to_lowercase())
                .filter(|t| !t.is_empty());
        if text.as_ref().is_some_and(|t| t.chars().count() < 2) {
            return Err(ApiError::validation("q", "must be at least 2 characters"));
        }
        if let (Some(f), Some(t)) = (from.0, to.0)
            && f >= t
        {
            return Err(ApiError::unprocessable("from", "must be before to"));
        }
        // Rules over the parameters together, which the schema does not state: 422.
        if text.is_none() && from.0.is_none() && to.0.is_none() {
            return Err(ApiError::unprocessable(
                "q",
                "give id, q, or a time range (from, to) to search by",
            ));
        }
        let phase = match cursor.0.as_deref().filter(|c| !c.is_empty()) {
            None => Phase::Redis {
                state: 0,
                after: String::new(),
            },
            Some(c) => Phase::parse(c)
                .ok_or_else(|| ApiError::validation("cursor", "is not one this API returned"))?,
        };
        let m = Matcher {
            text,
            from: from.0,
            to: to.0,
        };
        let budget = u64::from(state.config().search_scan_max);
        if !key.may_use(name) {
            // Like every read of a queue the key may not use: nothing is there.
            return Ok(SearchResponse::Ok(Json(SearchResult {
                examined: 0,
                jobs: Vec::new(),
                next_cursor: None,
            })));
        }
        let found = run(
            &state,
            &key,
            name,
            &m,
            phase,
            budget,
            limit.0.clamp(1, 200) as usize,
        )
        .await?;
        Ok(SearchResponse::Ok(Json(found)))
    }
}

/// Examines jobs from `phase` on until `limit` match, `budget` were examined, or none
/// is left. Only jobs `key` may read count as matches (a submitter key finds only the
/// jobs it submitted).
async fn run(
    state: &AppState,
    key: &Principal,
    name: QueueName,
    m: &Matcher,
    mut phase: Phase,
    budget: u64,
    limit: usize,
) -> Result<SearchResult, ApiError> {
    let q = state.queues().get(name);
    let mut jobs = Vec::new();
    let mut examined = 0u64;
    loop {
        if jobs.len() >= limit || examined >= budget {
            return Ok(SearchResult {
                jobs,
                examined,
                next_cursor: Some(phase.encode()),
            });
        }
        let take = usize::try_from(budget - examined)
            .unwrap_or(SCAN_PAGE)
            .min(SCAN_PAGE);
        match &phase {
            Phase::Redis { state: i, after } => {
                let cursor = (!after.is_empty()).then_some(after.as_str());
                let page = q.list(STATES[*i], cursor, take).await?;
                examined += page.jobs.len() as u64;
                for j in page.jobs {
                    if !key.may_read(&j.queue, j.submitter) {
                        continue;
                    }
                    let v: JobView = j.into();
                    if m.matches(&v) {
                        jobs.push(v);
                    }
                }
                phase = match page.next_cursor {
                    Some(c) => Phase::Redis {
                        state: *i,
                        after: c,
                    },
                    None if *i + 1 < STATES.len() => Phase::Redis {
                        state: *i + 1,
                        after: String::new(),
                    },
                    None => Phase::Archive {
                        after: String::new(),
                    },
                };
            }
            Phase::Archive { after } => {
                let f = HistoryFilter::parse(
                    Some(name.as_str()),
                    None,
                    None,
                    None,
                    (!after.is_empty()).then_some(after.as_str()),
                )?;
                let (rows, next) = page(state.db(), &f, u32::try_from(take).unwrap_or(200)).await?;
                examined += rows.len() as u64;
                for r in rows {
                    if !key.may_read(&r.queue, r.submitter_key_id) {
                        continue;
                    }
                    let v: JobView = r.into();
                    if m.matches(&v) {
                        jobs.push(v);
                    }
                }
                match next {
                    Some(c) => phase = Phase::Archive { after: c },
                    None => {
                        return Ok(SearchResult {
                            jobs,
                            examined,
                            next_cursor: None,
                        });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        for p in [
            Phase::Redis {
                state: 3,
                after: "1767225600000|01JD4X8Q7W3K9N2M5P6R8T0V1Y".into(),
            },
            Phase::Redis {
                state: 0,
                after: String::new(),
            },
            Phase::Archive {
                after: "17|01AB".into(),
            },
        ] {
            assert_eq!(Phase::parse(&p.encode()), Some(p));
        }
        for bad in ["", "x", "r9:", "rx:", "h:../x", "r1:a b", "q:1"] {
            assert_eq!(Phase::parse(bad), None, "{bad}");
        }
    }
}
