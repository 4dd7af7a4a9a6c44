//! Progress events over Server-Sent Events: one job's, every job's, the relay's state,
//! and a test event for development.
//!
//! Each SSE message has `event:` the event type (`job:progress`, `job:completed`, …),
//! `id:` where the client is (send it back as `Last-Event-ID` to resume: a stream id
//! on a job's stream, a cursor of per-queue positions on `/sse/events`) and `data:`
//! the event as JSON. Two notices about the stream itself may come last:
//! `stream:lagged` (the client fell further behind than its buffer; it is closed) and
//! `stream:error` (Redis failed during a replay); their `id:` is where to resume.
//! One may come first: `stream:gap` (events after the client's `Last-Event-ID` are
//! no longer held, or a finished job's replay left its oldest out); it names the
//! first id still available, and has no `id:`, so the client's position stays.
//! One API key holds at most `DROVER_SSE_MAX_STREAMS_PER_KEY` streams per process
//! (429 past it), and a test event is only ever about a `test-…` job id.
//! A comment line (`:`) goes out every `DROVER_SSE_KEEP_ALIVE_MS` to keep proxies
//! from closing an idle stream.
//!
//! Auth (applied where the API-key auth lands): `get_job_events` and `get_events`
//! need a `submitter` key (submitters may read events); `get_sse_status` and
//! `publish_test_event` need an `admin` key.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use drover_entities::job_history;
use drover_jobs::QueueName;
use drover_jobs::events::{EventType, StreamPos};
use drover_queue::{JobRecord, JobState};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaSchemaRef, Registry};
// Only named, never imported: `Type::is_empty` would shadow `str::is_empty` here.
use poem_openapi::types;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::EntityTrait as _;

use super::views::at;
use crate::error::ApiError;
use crate::openapi::ApiTags;
use crate::relay::body::SseBody;
use crate::relay::cursor::{Cursor, parse_pos};
use crate::relay::hub::{Filter, StreamKind, SubscribeError};
use crate::relay::stream::{self, SseItem};
use poem::web::Data;

use crate::auth::{AdminKey, Principal, SubmitterKey};
use crate::state::AppState;

/// An event, as the `data:` of each SSE message.
///
/// It describes the JSON in the API document; the relay serialises the queue's
/// [`drover_jobs::events::Event`] itself, once per event for every client.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Event")]
pub struct EventView {
    /// The stream entry id (`<ms>-<seq>`), unique and increasing within its queue.
    pub id: String,
    /// `job:queued`, `job:active`, `job:progress`, `job:completed`, `job:failed`,
    /// `job:retrying`, `job:stalled`, `job:removed`, `queue:paused`, `queue:resumed`
    /// or `queue:cleaned`.
    #[oai(rename = "type")]
    pub kind: String,
    pub queue: String,
    /// Empty for queue events.
    pub job_id: String,
    /// The attempt it belongs to (0 before the first).
    pub attempt: u32,
    /// 0 to 100.
    pub progress: u8,
    pub message: String,
    /// Details by type; `job:progress` of Drover's handlers carries `rows_done`,
    /// `rows_total`, `rows_per_s`, `eta_s` and `elapsed_s`.
    pub data: serde_json::Value,
    /// When it happened, ms since the epoch (Redis's clock).
    pub ts: i64,
}

impl types::Type for SseItem {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        <EventView as types::Type>::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        <EventView as types::Type>::schema_ref()
    }

    fn register(registry: &mut Registry) {
        <EventView as types::Type>::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(self))
    }
}

/// A stream of events.
type Events = SseBody;

#[derive(ApiResponse)]
enum JobEventsResponse {
    /// The job's events as Server-Sent Events: those it had (or those after
    /// `Last-Event-ID`), then live ones; the stream ends after its terminal event
    /// (`job:completed`, `job:failed` or `job:removed`). A job that had already
    /// finished gets its final state and the stream ends.
    #[oai(status = 200)]
    Stream(Events),
    /// The job has finished and the client has seen its end: nothing more will
    /// come. (`EventSource` stops reconnecting on 204.)
    #[oai(status = 204)]
    Finished,
}

#[derive(ApiResponse)]
enum EventsResponse {
    /// Events as Server-Sent Events: those after `Last-Event-ID` that the streams
    /// still hold, then live ones. The `id:` of each is a cursor (`queue:<ms>-<seq>,…`).
    #[oai(status = 200)]
    Stream(Events),
}

/// Clients of this API process.
#[derive(Debug, Clone, Object)]
pub struct SseClients {
    /// Event streams open now.
    pub total: u64,
    /// Of which per-job streams.
    pub job_streams: u64,
    /// Of which `/sse/events` streams.
    pub event_streams: u64,
    /// Most streams this process serves at once.
    pub max: u64,
    /// Clients closed since start because they fell behind.
    pub lagged_disconnects: u64,
    /// Events buffered per client before it counts as behind.
    pub buffer: u64,
}

/// One queue's reader in this API process.
#[derive(Debug, Clone, Object)]
pub struct RelayView {
    pub queue: String,
    /// Whether its last read from Redis succeeded.
    pub connected: bool,
    /// The id of the last entry it delivered; absent before it first reached Redis.
    #[oai(skip_serializing_if_is_none)]
    pub last_read_id: Option<String>,
    /// The id of the stream's newest entry; absent if Redis did not answer.
    #[oai(skip_serializing_if_is_none)]
    pub stream_last_id: Option<String>,
    /// How far behind the stream's newest entry the reader is, in ms of stream time
    /// (0 when caught up).
    #[oai(skip_serializing_if_is_none)]
    pub behind_ms: Option<u64>,
    /// Events delivered since start.
    pub events_relayed: u64,
    /// When the last event it delivered was appended.
    #[oai(skip_serializing_if_is_none)]
    pub last_event_at: Option<DateTime<Utc>>,
    /// How long after its append that event reached the clients' buffers, in ms.
    #[oai(skip_serializing_if_is_none)]
    pub last_delivery_lag_ms: Option<u64>,
    /// Failed reads since start.
    pub failures: u64,
    #[oai(skip_serializing_if_is_none)]
    pub last_error: Option<String>,
}

/// The state of this process's event relay.
#[derive(Debug, Clone, Object)]
pub struct SseStatus {
    pub clients: SseClients,
    pub relays: Vec<RelayView>,
    /// How often a keep-alive comment goes out, in ms.
    pub keep_alive_ms: u64,
}

/// A test event to publish.
#[derive(Debug, Clone, Object, serde::Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct TestEventRequest {
    /// The queue whose stream gets it (default `export`).
    #[oai(validator(pattern = r"^(?:export|analysis|aggregation|cleanup)$"))]
    pub queue: Option<String>,
    /// Its type (default `job:progress`).
    #[serde(rename = "type")]
    #[oai(
        rename = "type",
        validator(
            pattern = r"^(?:job:(?:queued|active|progress|completed|failed|retrying|stalled|removed)|queue:(?:paused|resumed|cleaned))$"
        )
    )]
    pub kind: Option<String>,
    /// The job it is about: an id that starts with `test-` (default a new `test-…`
    /// id). Real jobs' ids never do, so a test event can never pass for a real job's
    /// (a forged `job:completed`, say).
    #[oai(validator(
        min_length = 6,
        max_length = 128,
        pattern = r"^test-[^\u0000-\u001f\u007f-\u009f]*$"
    ))]
    pub job_id: Option<String>,
    /// Default `test event`.
    #[oai(validator(max_length = 1024))]
    pub message: Option<String>,
    /// A JSON object (default `{}`).
    pub data: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

/// A published test event.
#[derive(Debug, Clone, Object)]
pub struct PublishedEvent {
    /// Its stream entry id.
    pub id: String,
    pub queue: String,
    #[oai(rename = "type")]
    pub kind: String,
    pub job_id: String,
}

#[derive(ApiResponse)]
enum TestEventResponse {
    /// The event was appended to the queue's stream.
    #[oai(status = 201)]
    Created(Json<PublishedEvent>),
}

#[derive(ApiResponse)]
enum SseStatusResponse {
    /// This process's SSE clients, and how far each queue's reader is behind.
    #[oai(status = 200)]
    Ok(Json<SseStatus>),
}

/// Server-Sent Events.
pub struct SseApi;

/// What the handlers work with.
struct Ctx<'a> {
    state: &'a AppState,
    /// The key of the request: a submitter key follows only its own jobs.
    key: &'a Principal,
}

/// Longest job id accepted in a filter.
const MAX_ID: usize = 128;
/// What the job id of every test event starts with. Real jobs' ids are ULIDs, which
/// hold no `-`, so no test event is ever about a real job.
const TEST_JOB_PREFIX: &str = "test-";

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Events")]
impl SseApi {
    /// Follow a job's events
    ///
    /// Server-Sent Events of one job, in order: what happened so far, then live
    /// progress, until its terminal event. Reconnect with `Last-Event-ID` (or
    /// `?last_event_id=`) to get exactly what was missed.
    #[oai(
        path = "/jobs/:id/events",
        method = "get",
        operation_id = "get_job_events"
    )]
    async fn get_job_events(
        &self,
        key: SubmitterKey,
        state: Data<&AppState>,
        id: Path<String>,
        /// The `id:` of the last event received, to resume after it: a stream id
        /// (`<ms>-<seq>`) or a cursor (`export:<ms>-<seq>,…`).
        #[oai(
            name = "Last-Event-ID",
            validator(
                pattern = r"^(?:|[0-9]{1,19}-[0-9]{1,19}|(?:export|analysis|aggregation|cleanup):[0-9]{1,19}-[0-9]{1,19}(?:,(?:export|analysis|aggregation|cleanup):[0-9]{1,19}-[0-9]{1,19}){0,3})$"
            )
        )]
        last_event_id: Header<Option<String>>,
        /// Same as the `Last-Event-ID` header, for clients that cannot set headers.
        #[oai(
            name = "last_event_id",
            validator(
                pattern = r"^(?:|[0-9]{1,19}-[0-9]{1,19}|(?:export|analysis|aggregation|cleanup):[0-9]{1,19}-[0-9]{1,19}(?:,(?:export|analysis|aggregation|cleanup):[0-9]{1,19}-[0-9]{1,19}){0,3})$"
            )
        )]
        last_event_id_param: Query<Option<String>>,
    ) -> Result<JobEventsResponse, ApiError> {
        let this = Ctx {
            state: &state,
            key: &key.0,
        };
        let id = id.0;
        // An empty one is no position at all.
        let last = last_event_id
            .0
            .or(last_event_id_param.0)
            .filter(|s| !s.is_empty());
        let Some((q, record)) = this.find(&id).await? else {
            return this.archived(&id, last.is_some()).await;
        };
        if !this.key.may_read(q.as_str(), record.submitter) {
            return Err(ApiError::not_found(format!("no job {id:?}")));
        }
        let after = match &last {
            Some(s) => Cursor::position_for(s, q)
                .map_err(|e| ApiError::validation("Last-Event-ID", e.to_string()))?,
            None => None,
        };
        let queue = this.state.queues().get(q).clone();
        let relay = this.state.relay();
        if record.state.is_finished() {
            let keep = relay.config().replay_max;
            let items = stream::finished_job(&queue, q, &record, after, keep).await?;
            if items.is_empty() {
                return Ok(JobEventsResponse::Finished);
            }
            return Ok(JobEventsResponse::Stream(
                this.events(futures::stream::iter(items).boxed()),
            ));
        }
        let sub = relay
            .subscribe(
                Filter::default().queues(&[q]).job(&id),
                StreamKind::Job,
                key.0.key_id,
            )
            .map_err(refused)?;
        let resumed = after.is_some();
        let after = after.unwrap_or_else(|| stream::job_origin(&record));
        let buffer = relay.config().client_buffer;
        let s = stream::follow_job(queue, q, id, after, resumed, sub, buffer);
        Ok(JobEventsResponse::Stream(this.events(s)))
    }

    /// Follow events
    ///
    /// Server-Sent Events of every queue, or of those asked for. Reconnect with
    /// `Last-Event-ID` to get what was missed (what the streams still hold), then
    /// live events.
    #[oai(path = "/sse/events", method = "get", operation_id = "get_events")]
    #[expect(
        clippy::too_many_arguments,
        reason = "each argument is one input of the operation"
    )]
    async fn get_events(
        &self,
        key: SubmitterKey,
        state: Data<&AppState>,
        /// Only these queues (comma-separated), e.g. `export,analysis`.
        #[oai(validator(
            max_length = 200,
            pattern = r"^(?:export|analysis|aggregation|cleanup)(?:,(?:export|analysis|aggregation|cleanup))*$"
        ))]
        queue: Query<Option<String>>,
        /// Only this job's events: 1 to 128 characters, no control characters.
        #[oai(validator(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,128}$"))]
        job_id: Query<Option<String>>,
        /// Only these event types (comma-separated), e.g. `job:progress,job:completed`.
        #[oai(
            name = "type",
            validator(
                pattern = r"^(?:job:(?:queued|active|progress|completed|failed|retrying|stalled|removed)|queue:(?:paused|resumed|cleaned))(?:,(?:job:(?:queued|active|progress|completed|failed|retrying|stalled|removed)|queue:(?:paused|resumed|cleaned))){0,10}$"
            )
        )]
        kind: Query<Option<String>>,
        /// The `id:` of the last event received, to resume after it: a cursor
        /// (`export:<ms>-<seq>,…`), or a stream id (`<ms>-<seq>`) when exactly one
        /// queue is followed (else 422).
        #[oai(
            name = "Last-Event-ID",
            validator(
                pattern = r"^(?:|[0-9]{1,19}-[0-9]{1,19}|(?:export|analysis|aggregation|cleanup):[0-9]{1,19}-[0-9]{1,19}(?:,(?:export|analysis|aggregation|cleanup):[0-9]{1,19}-[0-9]{1,19}){0,3})$"
            )
        )]
        last_event_id: Header<Option<String>>,
        /// Same as the `Last-Event-ID` header, for clients that cannot set headers.
        #[oai(
            name = "last_event_id",
            validator(
                pattern = r"^(?:|[0-9]{1,19}-[0-9]{1,19}|(?:export|analysis|aggregation|cleanup):[0-9]{1,19}-[0-9]{1,19}(?:,(?:export|analysis|aggregation|cleanup):[0-9]{1,19}-[0-9]{1,19}){0,3})$"
            )
        )]
        last_event_id_param: Query<Option<String>>,
    ) -> Result<EventsResponse, ApiError> {
        let this = Ctx {
            state: &state,
            key: &key.0,
        };
        let queues = parse_list(queue.0.as_deref(), "queue", |s| s.parse::<QueueName>())?;
        let types = parse_list(kind.0.as_deref(), "type", |s| s.parse::<EventType>())?;
        let mut filter = Filter::default().queues(&queues).types(&types);
        if let Some(j) = job_id.0 {
            if j.is_empty() || j.chars().count() > MAX_ID || j.chars().any(char::is_control) {
                return Err(ApiError::validation(
                    "job_id",
                    "must be 1 to 128 characters",
                ));
            }
            if !this.key.is_admin() {
                // A submitter follows only a job it submitted, in its queues: any other
                // is not there for it.
                let mine = match this.find(&j).await? {
                    Some((q, record)) => {
                        this.key.may_read(q.as_str(), record.submitter)
                            && (queues.is_empty() || queues.contains(&q))
                    }
                    None => false,
                };
                if !mine {
                    return Err(ApiError::not_found(format!("no job {j:?}")));
                }
            }
            filter = filter.job(&j);
        } else if !this.key.is_admin() {
            // Events carry no submitter, so a queue's stream would show other tenants'
            // jobs: a submitter key follows its own jobs, one at a time.
            return Err(ApiError::forbidden(
                "a submitter key follows its own jobs: pass job_id (or use GET \
                 /api/v1/jobs/{id}/events); following whole queues needs an admin key",
            ));
        }
        let resume = match last_event_id
            .0
            .or(last_event_id_param.0)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(s) => Some(resume_cursor(&s, &filter)?),
        };
        let relay = this.state.relay();
        let sub = relay
            .subscribe(filter.clone(), StreamKind::Events, key.0.key_id)
            .map_err(refused)?;
        let s = stream::follow_events(
            relay.clone(),
            filter,
            resume,
            sub,
            relay.config().client_buffer,
        );
        Ok(EventsResponse::Stream(this.events(s)))
    }

    /// Event relay status
    ///
    /// The clients of this API process, and how far each queue's reader is behind
    /// its stream.
    #[oai(path = "/sse/status", method = "get", operation_id = "get_sse_status")]
    async fn get_sse_status(
        &self,
        _key: AdminKey,
        state: Data<&AppState>,
    ) -> Result<SseStatusResponse, ApiError> {
        let system = Principal::system();
        let this = Ctx {
            state: &state,
            key: &system,
        };
        let relay = this.state.relay();
        let clients = relay.clients();
        let readers = relay.readers();
        let ends = futures::future::join_all(readers.iter().map(|r| {
            let queue = this.state.queues().get(r.queue).clone();
            async move {
                let timeout = queue.redis().config().response_timeout;
                match tokio::time::timeout(timeout, queue.last_event_id()).await {
                    Ok(Ok(id)) => parse_pos(&id),
                    _ => None,
                }
            }
        }))
        .await;
        let relays = readers
            .into_iter()
            .zip(ends)
            .map(|(r, end)| RelayView {
                queue: r.queue.as_str().to_owned(),
                connected: r.connected,
                last_read_id: r.position.map(|p| p.to_string()),
                stream_last_id: end.map(|p| p.to_string()),
                behind_ms: match (r.position, end) {
                    (Some(read), Some(end)) => Some(end.ms.saturating_sub(read.ms)),
                    _ => None,
                },
                events_relayed: r.relayed,
                last_event_at: r.last_event_ts.map(at),
                last_delivery_lag_ms: r.last_delivery_lag_ms.and_then(|l| u64::try_from(l).ok()),
                failures: r.failures,
                last_error: r.last_error,
            })
            .collect();
        let config = relay.config();
        Ok(SseStatusResponse::Ok(Json(SseStatus {
            clients: SseClients {
                total: (clients.job_streams + clients.event_streams) as u64,
                job_streams: clients.job_streams as u64,
                event_streams: clients.event_streams as u64,
                max: config.max_clients as u64,
                lagged_disconnects: clients.lagged_total,
                buffer: config.client_buffer as u64,
            },
            relays,
            keep_alive_ms: u64::try_from(config.keep_alive.as_millis()).unwrap_or(u64::MAX),
        })))
    }

    /// Publish a test event (development only)
    ///
    /// Appends an event to a queue's stream, as a worker would, so that clients can
    /// be tried without running jobs. Only when `DROVER_ENV=dev`; 404 otherwise.
    #[oai(
        path = "/sse/test-event",
        method = "post",
        operation_id = "publish_test_event"
    )]
    async fn publish_test_event(
        &self,
        _key: AdminKey,
        state: Data<&AppState>,
        body: crate::payload::JsonBody<TestEventRequest>,
    ) -> Result<TestEventResponse, ApiError> {
        let system = Principal::system();
        let this = Ctx {
            state: &state,
            key: &system,
        };
        if !this.state.config().common.is_dev() {
            // The same answer as a route that does not exist: production does not
            // advertise development tools.
            return Err(ApiError::not_found("no such route: see /docs for the API"));
        }
        let b = body.0;
        let q = match b.queue.as_deref() {
            None => QueueName::Export,
            Some(s) => s
                .parse::<QueueName>()
                .map_err(|e| ApiError::validation("queue", e.to_string()))?,
        };
        let kind = match b.kind.as_deref() {
            None => EventType::JobProgress,
            Some(s) => s
                .parse::<EventType>()
                .map_err(|e| ApiError::validation("type", e.to_string()))?,
        };
        let data = serde_json::Value::Object(b.data.unwrap_or_default().into_iter().collect());
        // The body is parsed with serde: the document's limits are checked here.
        if b.message
            .as_deref()
            .is_some_and(|m| m.chars().count() > 1024)
        {
            return Err(ApiError::validation(
                "message",
                "must be at most 1024 characters",
            ));
        }
        if let Some(j) = b.job_id.as_deref() {
            if !(6..=128).contains(&j.chars().count()) {
                return Err(ApiError::validation(
                    "job_id",
                    "must be 6 to 128 characters",
                ));
            }
            if !j.starts_with(TEST_JOB_PREFIX) {
                return Err(ApiError::validation(
                    "job_id",
                    format!(
                        "must start with {TEST_JOB_PREFIX:?}: a test event cannot be about a real job"
                    ),
                ));
            }
            if j.chars().any(char::is_control) {
                return Err(ApiError::validation(
                    "job_id",
                    "must not hold control characters",
                ));
            }
        }
        let job_id = b.job_id.unwrap_or_else(|| {
            format!(
                "{TEST_JOB_PREFIX}{}",
                ulid::Ulid::new().to_string().to_lowercase()
            )
        });
        let message = b.message.unwrap_or_else(|| "test event".to_owned());
        let id = this
            .state
            .queues()
            .get(q)
            .append_event(kind, &job_id, &message, &data)
            .await?;
        Ok(TestEventResponse::Created(Json(PublishedEvent {
            id,
            queue: q.as_str().to_owned(),
            kind: kind.as_str().to_owned(),
            job_id,
        })))
    }
}

impl Ctx<'_> {
    /// Wraps a stream of items as the SSE payload, with keep-alives.
    fn events(&self, s: BoxStream<'static, SseItem>) -> Events {
        SseBody::new(s, self.state.relay().config().keep_alive)
    }

    /// The queue holding job `id` in Redis, and the job.
    async fn find(&self, id: &str) -> Result<Option<(QueueName, JobRecord)>, ApiError> {
        let found = futures::future::join_all(QueueName::ALL.into_iter().map(|q| {
            let queue = self.state.queues().get(q).clone();
            async move { (q, queue.get(id).await) }
        }))
        .await;
        let mut error = None;
        for (q, r) in found {
            match r {
                Ok(Some(job)) => return Ok(Some((q, job))),
                Ok(None) => {}
                Err(e) => error = Some(e),
            }
        }
        match error {
            Some(e) => Err(e.into()),
            None => Ok(None),
        }
    }

    /// A job that is not in Redis: its final state from the archive, or 404.
    async fn archived(&self, id: &str, resuming: bool) -> Result<JobEventsResponse, ApiError> {
        let Some(row) = job_history::Entity::find_by_id(id.to_owned())
            .one(self.state.db())
            .await?
        else {
            return Err(ApiError::not_found(format!("no job {id:?}")));
        };
        if !self.key.may_read(&row.queue, row.submitter_key_id) {
            return Err(ApiError::not_found(format!("no job {id:?}")));
        }
        // An archived job cannot change; a client coming back has had its end.
        if resuming {
            return Ok(JobEventsResponse::Finished);
        }
        let Ok(q) = row.queue.parse::<QueueName>() else {
            return Err(ApiError::not_found(format!("no job {id:?}")));
        };
        let state = if row.state == "completed" {
            JobState::Completed
        } else {
            JobState::Failed
        };
        let result = row
            .result
            .as_deref()
            .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok());
        let finished = row
            .finished_at
            .unwrap_or(row.archived_at)
            .timestamp_millis();
        let data = serde_json::json!({
            "state": row.state,
            "result": result,
            "reason": row.failed_reason,
            "finished_at": finished,
            "rebuilt": true,
            "archived": true,
        });
        let progress = if state == JobState::Completed { 100 } else { 0 };
        let attempts = u32::try_from(row.attempts).unwrap_or(0);
        let event = stream::final_event(q, id, state, attempts, progress, data, finished);
        let item = SseItem::from_event(&event, StreamPos::ZERO.to_string());
        Ok(JobEventsResponse::Stream(
            self.events(futures::stream::iter([item]).boxed()),
        ))
    }
}

/// A comma-separated list of `T`s (empty when absent).
fn parse_list<T, E: std::fmt::Display>(
    s: Option<&str>,
    field: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Vec<T>, ApiError> {
    s.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| parse(p).map_err(|e| ApiError::validation(field, e.to_string())))
        .collect()
}

/// The cursor a `Last-Event-ID` names on `/sse/events`: a cursor, or a plain stream
/// id when the client follows exactly one queue.
fn resume_cursor(s: &str, filter: &Filter) -> Result<Cursor, ApiError> {
    let followed: Vec<QueueName> = filter.followed().collect();
    if let (Some(pos), [q]) = (parse_pos(s), followed.as_slice()) {
        let mut c = Cursor::default();
        c.set(*q, pos);
        return Ok(c);
    }
    if parse_pos(s).is_some() {
        // Well formed, and ambiguous: a stream id names a position in one queue.
        return Err(ApiError::unprocessable(
            "Last-Event-ID",
            "a stream id resumes only a stream of one queue: send the cursor (the `id:` of \
             the last event received) or follow one queue",
        ));
    }
    Cursor::parse(s).map_err(|e| ApiError::validation("Last-Event-ID", e.to_string()))
}

/// Seconds a key at its stream cap is told to wait: streams are long-lived, so one
/// frees up on the scale of seconds, not milliseconds.
const KEY_FULL_RETRY_AFTER_S: u64 = 5;

fn refused(e: SubscribeError) -> ApiError {
    match e {
        SubscribeError::KeyFull(_) => ApiError::too_many(e.to_string(), KEY_FULL_RETRY_AFTER_S),
        SubscribeError::Full(_) | SubscribeError::Closed => {
            ApiError::unavailable(format!("{e}; retry shortly"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse() {
        let v = parse_list(None, "queue", |s| s.parse::<QueueName>()).unwrap();
        assert!(v.is_empty());
        let v = parse_list(Some("export, cleanup"), "queue", |s| s.parse::<QueueName>()).unwrap();
        assert_eq!(v, vec![QueueName::Export, QueueName::Cleanup]);
    }
}
