//! The schedules resource: cron schedules that enqueue jobs (reading: any key; writing
//! and triggering: admin keys).
//!
//! What a valid schedule is, and how fires are carried out, is the scheduler crate's
//! (`drover_scheduler::spec`, `drover_scheduler::fire`): a schedule saved here is one
//! the scheduler can run, and a trigger is recorded exactly like a scheduled fire,
//! marked manual. Running schedulers re-read the schedules every few seconds.

use chrono::{DateTime, Utc};
use drover_entities::{schedule, schedule_fire};
use drover_jobs::QueueName;
use drover_scheduler::fire;
use drover_scheduler::spec::{Draft, Spec, SpecError};
use drover_scheduler::store;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Deserialize;
use serde_json::Value;

use super::lookup::find_in_queue;
use crate::auth::{AdminKey, SubmitterKey};
use crate::error::ApiError;
use crate::openapi::ApiTags;
use crate::payload::{JsonBody, JsonObject};
use crate::state::AppState;

/// Fire records shown with one schedule.
const RECENT_FIRES: u64 = 20;

fn utc() -> String {
    "UTC".to_owned()
}
fn empty_object() -> JsonObject {
    JsonObject(Value::Object(serde_json::Map::new()))
}
fn once() -> String {
    "once".to_owned()
}
fn ten() -> i64 {
    10
}
fn allow() -> String {
    "allow".to_owned()
}
fn yes() -> bool {
    true
}

/// A schedule to create.
#[derive(Debug, Clone, Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSchedule {
    /// 1 to 64 of `a-z 0-9 _ -`; stable: it keys the fire records.
    #[oai(validator(pattern = r"^[a-z0-9_-]{1,64}$"))]
    pub name: String,
    /// A 5-field crontab (`min hour day month weekday`, weekday 0 or 7 = Sunday) or 6
    /// fields with seconds first; an expression that does not parse, or never fires
    /// again, is a 422.
    pub cron: String,
    /// The IANA timezone the expression is read in (default `UTC`; an unknown one is a
    /// 422).
    #[oai(default = "utc")]
    #[serde(default = "utc")]
    pub timezone: String,
    /// `export`, `analysis`, `aggregation` or `cleanup`.
    #[oai(validator(pattern = r"^(?:export|analysis|aggregation|cleanup)$"))]
    pub queue: String,
    /// The job's payload, a JSON object; strings may hold placeholders of the scheduled
    /// time, such as `{{previous_hour_start}}` (see docs/SCHEDULER.md). Default `{}`.
    /// A payload the queue would refuse is a 422.
    #[oai(default = "empty_object")]
    #[serde(default = "empty_object")]
    pub payload: JsonObject,
    /// Missed fires (due longer than the grace ago): `skip`, `once` (the latest runs) or
    /// `all` (the latest `catch_up_limit` run). Default `once`.
    #[oai(default = "once", validator(pattern = r"^(?:skip|once|all)$"))]
    #[serde(default = "once")]
    pub missed_fire: String,
    /// Under `all`, at most this many missed fires run, 0 to 1000 (default 10).
    #[oai(
        default = "ten",
        validator(minimum(value = "0"), maximum(value = "1000"))
    )]
    #[serde(default = "ten")]
    pub catch_up_limit: i64,
    /// While the previous fire's job is waiting, delayed or active: `allow` (enqueue
    /// anyway, the default) or `skip` (record the fire as skipped).
    #[oai(default = "allow", validator(pattern = r"^(?:allow|skip)$"))]
    #[serde(default = "allow")]
    pub overlap: String,
    /// Whether it fires (default true).
    #[oai(default = "yes")]
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// Changes to a schedule; each field omitted stays as it is.
#[derive(Debug, Clone, Default, Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchSchedule {
    /// As in `create_schedule` (422 if it does not parse).
    pub cron: Option<String>,
    /// As in `create_schedule` (422 if unknown).
    pub timezone: Option<String>,
    #[oai(validator(pattern = r"^(?:export|analysis|aggregation|cleanup)$"))]
    pub queue: Option<String>,
    /// Replaces the whole payload template (422 if the queue would refuse it).
    pub payload: Option<JsonObject>,
    #[oai(validator(pattern = r"^(?:skip|once|all)$"))]
    pub missed_fire: Option<String>,
    #[oai(validator(minimum(value = "0"), maximum(value = "1000")))]
    pub catch_up_limit: Option<i64>,
    #[oai(validator(pattern = r"^(?:allow|skip)$"))]
    pub overlap: Option<String>,
    pub enabled: Option<bool>,
}

/// One fire of a schedule.
#[derive(Debug, Clone, Object)]
pub struct FireView {
    pub id: String,
    /// When it was due (for a manual fire, when it was triggered).
    pub scheduled_at: DateTime<Utc>,
    /// Triggered through the API.
    pub manual: bool,
    /// `enqueued`, `pending` (decided, job not yet enqueued) or `skipped`.
    pub status: String,
    /// Why it was skipped.
    #[oai(skip_serializing_if_is_none)]
    pub reason: Option<String>,
    pub queue: String,
    #[oai(skip_serializing_if_is_none)]
    pub job_id: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub enqueued_at: Option<DateTime<Utc>>,
    pub recorded_at: DateTime<Utc>,
}

impl From<schedule_fire::Model> for FireView {
    fn from(f: schedule_fire::Model) -> Self {
        Self {
            id: f.id,
            scheduled_at: f.scheduled_at,
            manual: f.manual,
            status: f.status,
            reason: f.reason,
            queue: f.queue,
            job_id: f.job_id,
            enqueued_at: f.enqueued_at,
            recorded_at: f.recorded_at,
        }
    }
}

/// The job of a schedule's newest fire.
#[derive(Debug, Clone, Object)]
pub struct LastJob {
    pub id: String,
    pub queue: String,
    /// Its state now, or `gone` once it has left Redis and the archive.
    pub state: String,
}

/// A schedule, with its next and last fires.
#[derive(Debug, Clone, Object)]
pub struct ScheduleView {
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub queue: String,
    /// The payload template.
    pub payload: Value,
    pub missed_fire: String,
    pub catch_up_limit: i32,
    pub overlap: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When it fires next (absent while disabled).
    #[oai(skip_serializing_if_is_none)]
    pub next_fire_at: Option<DateTime<Utc>>,
    /// Its newest fire record.
    #[oai(skip_serializing_if_is_none)]
    pub last_fire: Option<FireView>,
    /// The job of its newest fire that made one.
    #[oai(skip_serializing_if_is_none)]
    pub last_job: Option<LastJob>,
    /// Its newest fire records, newest first (one schedule only).
    #[oai(skip_serializing_if_is_none)]
    pub recent_fires: Option<Vec<FireView>>,
}

/// Schedules.
#[derive(Debug, Clone, Object)]
pub struct ScheduleList {
    pub schedules: Vec<ScheduleView>,
}

#[derive(ApiResponse)]
enum ListResponse {
    /// Every schedule, by name.
    #[oai(status = 200)]
    Ok(Json<ScheduleList>),
}

#[derive(ApiResponse)]
enum GetResponse {
    /// The schedule.
    #[oai(status = 200)]
    Ok(Json<ScheduleView>),
}

#[derive(ApiResponse)]
enum CreateResponse {
    /// Created; `Location` is its URL.
    #[oai(status = 201)]
    Created(
        Json<ScheduleView>,
        /// The schedule's URL.
        #[oai(header = "Location")]
        String,
    ),
}

#[derive(ApiResponse)]
enum DeleteResponse {
    /// Deleted, with its fire records (jobs it enqueued stay).
    #[oai(status = 204)]
    Deleted,
}

#[derive(ApiResponse)]
enum TriggerResponse {
    /// The manual fire, with its job.
    #[oai(status = 201)]
    Fired(Json<FireView>),
}

/// A schedule that fits the document and is refused answers 422 when what is wrong is
/// beyond a schema (the expression does not parse or never fires, the timezone is
/// unknown, the queue would refuse the payload), 400 otherwise.
fn spec_error(e: SpecError) -> ApiError {
    let beyond_schema =
        e.field == "cron" || e.field == "timezone" || e.field.starts_with("payload");
    if beyond_schema {
        ApiError::unprocessable(&e.field, e.message)
    } else {
        ApiError::validation(&e.field, e.message)
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("no schedule named {name:?}"))
}

fn fire_error(e: fire::FireError) -> ApiError {
    match e {
        fire::FireError::Db(e) => e.into(),
        fire::FireError::Queue(e) => e.into(),
    }
}

async fn view(
    state: &AppState,
    m: schedule::Model,
    recent: bool,
) -> Result<ScheduleView, ApiError> {
    let now = Utc::now();
    let next = if m.enabled {
        Spec::from_model(&m, now)
            .ok()
            .and_then(|s| s.timing.next_after(now))
    } else {
        None
    };
    let fires = store::recent(state.db(), &m.name, if recent { RECENT_FIRES } else { 1 }).await?;
    let last_job = match store::last_with_job(state.db(), &m.name).await? {
        Some(f) => match (f.job_id, f.queue.parse::<QueueName>()) {
            (Some(id), Ok(q)) => {
                let system = crate::auth::Principal::system();
                let st = find_in_queue(state, &system, q, &id).await?.map_or_else(
                    || "gone".to_owned(),
                    |j| drover_queue::JobState::from(j.state).to_string(),
                );
                Some(LastJob {
                    id,
                    queue: q.as_str().to_owned(),
                    state: st,
                })
            }
            _ => None,
        },
        None => None,
    };
    Ok(ScheduleView {
        payload: serde_json::from_str(&m.payload).unwrap_or(Value::Null),
        name: m.name,
        cron: m.cron,
        timezone: m.timezone,
        queue: m.queue,
        missed_fire: m.missed_fire,
        catch_up_limit: m.catch_up_limit,
        overlap: m.overlap,
        enabled: m.enabled,
        created_at: m.created_at,
        updated_at: m.updated_at,
        next_fire_at: next,
        last_fire: fires.first().cloned().map(Into::into),
        last_job,
        recent_fires: recent.then(|| fires.into_iter().map(Into::into).collect()),
    })
}

async fn existing(state: &AppState, name: &str) -> Result<schedule::Model, ApiError> {
    store::get(state.db(), name)
        .await?
        .ok_or_else(|| not_found(name))
}

/// The schedules resource.
pub struct SchedulesApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Schedules")]
impl SchedulesApi {
    /// List schedules
    ///
    /// Every schedule, with its next fire, its newest fire record, and the state of the
    /// job of its newest fire.
    #[oai(path = "/schedules", method = "get", operation_id = "list_schedules")]
    async fn list(
        &self,
        _key: SubmitterKey,
        state: Data<&AppState>,
    ) -> Result<ListResponse, ApiError> {
        let mut out = Vec::new();
        for m in store::list(state.db()).await? {
            out.push(view(&state, m, false).await?);
        }
        Ok(ListResponse::Ok(Json(ScheduleList { schedules: out })))
    }

    /// Get a schedule
    ///
    /// The schedule, with its newest fire records.
    #[oai(
        path = "/schedules/:name",
        method = "get",
        operation_id = "get_schedule"
    )]
    async fn get(
        &self,
        _key: SubmitterKey,
        state: Data<&AppState>,
        /// The schedule's name.
        name: Path<String>,
    ) -> Result<GetResponse, ApiError> {
        let m = existing(&state, &name.0).await?;
        Ok(GetResponse::Ok(Json(view(&state, m, true).await?)))
    }

    /// Create a schedule
    ///
    /// Checks every field: a bad cron expression, an unknown timezone or queue, or a
    /// payload the queue would refuse (rendered for a fire now) answers 422 naming the
    /// field, and nothing is saved. A name in use answers 409. Fires owed start from now.
    #[oai(path = "/schedules", method = "post", operation_id = "create_schedule")]
    async fn create(
        &self,
        _key: AdminKey,
        state: Data<&AppState>,
        body: JsonBody<CreateSchedule>,
    ) -> Result<CreateResponse, ApiError> {
        let b = body.0;
        let now = Utc::now();
        let spec = Draft {
            name: b.name,
            cron: b.cron,
            timezone: b.timezone,
            queue: b.queue,
            payload: b.payload.0,
            missed_fire: b.missed_fire,
            catch_up_limit: b.catch_up_limit,
            overlap: b.overlap,
            enabled: b.enabled,
        }
        .check(now, now)
        .map_err(spec_error)?;
        let row = store::row(&spec, now, now);
        if !store::create(state.db(), row.clone()).await? {
            return Err(ApiError::conflict(format!(
                "a schedule named {:?} exists: change it with PATCH, or choose another name",
                spec.name
            )));
        }
        tracing::info!(schedule = spec.name, cron = spec.cron, queue = %spec.queue, "schedule created");
        let location = format!("/api/v1/schedules/{}", spec.name);
        Ok(CreateResponse::Created(
            Json(view(&state, row, true).await?),
            location,
        ))
    }

    /// Change a schedule
    ///
    /// Changes the fields given, checked as on create. A change of cron, timezone or
    /// a re-enable starts the owed fires from now, so no past fire of the new timing
    /// is replayed.
    #[oai(
        path = "/schedules/:name",
        method = "patch",
        operation_id = "update_schedule"
    )]
    async fn update(
        &self,
        _key: AdminKey,
        state: Data<&AppState>,
        /// The schedule's name.
        name: Path<String>,
        body: JsonBody<PatchSchedule>,
    ) -> Result<GetResponse, ApiError> {
        let m = existing(&state, &name.0).await?;
        let p = body.0;
        let now = Utc::now();
        let draft = Draft {
            name: m.name.clone(),
            cron: p.cron.unwrap_or_else(|| m.cron.clone()),
            timezone: p.timezone.unwrap_or_else(|| m.timezone.clone()),
            queue: p.queue.unwrap_or_else(|| m.queue.clone()),
            payload: match p.payload {
                Some(v) => v.0,
                None => serde_json::from_str(&m.payload).unwrap_or(Value::Null),
            },
            missed_fire: p.missed_fire.unwrap_or_else(|| m.missed_fire.clone()),
            catch_up_limit: p.catch_up_limit.unwrap_or(i64::from(m.catch_up_limit)),
            overlap: p.overlap.unwrap_or_else(|| m.overlap.clone()),
            enabled: p.enabled.unwrap_or(m.enabled),
        };
        let retimed = draft.cron.trim() != m.cron
            || draft.timezone != m.timezone
            || (draft.enabled && !m.enabled);
        let anchor = if retimed { now } else { m.anchor_at };
        let spec = draft.check(now, anchor).map_err(spec_error)?;
        let row = store::row(&spec, m.created_at, now);
        store::update(state.db(), row.clone()).await?;
        tracing::info!(schedule = spec.name, "schedule changed");
        Ok(GetResponse::Ok(Json(view(&state, row, true).await?)))
    }

    /// Delete a schedule
    ///
    /// Deletes the schedule and its fire records; jobs it enqueued are not touched.
    #[oai(
        path = "/schedules/:name",
        method = "delete",
        operation_id = "delete_schedule"
    )]
    async fn delete(
        &self,
        _key: AdminKey,
        state: Data<&AppState>,
        /// The schedule's name.
        name: Path<String>,
    ) -> Result<DeleteResponse, ApiError> {
        if !store::delete(state.db(), &name.0).await? {
            return Err(not_found(&name.0));
        }
        tracing::info!(schedule = name.0, "schedule deleted");
        Ok(DeleteResponse::Deleted)
    }

    /// Trigger a schedule
    ///
    /// Fires the schedule now, whether enabled or not, with its payload rendered for
    /// now; recorded as a manual fire. The overlap policy does not apply. 503 if Redis
    /// cannot be reached (the fire is recorded as pending, and the scheduler enqueues it
    /// once Redis is back).
    #[oai(
        path = "/schedules/:name/trigger",
        method = "post",
        operation_id = "trigger_schedule"
    )]
    async fn trigger(
        &self,
        _key: AdminKey,
        state: Data<&AppState>,
        /// The schedule's name.
        name: Path<String>,
    ) -> Result<TriggerResponse, ApiError> {
        let m = existing(&state, &name.0).await?;
        let spec = Spec::from_model(&m, Utc::now()).map_err(spec_error)?;
        let fired = fire::manual(state.db(), state.queues(), &spec, Utc::now)
            .await
            .map_err(fire_error)?
            .map_err(spec_error)?;
        tracing::info!(
            schedule = spec.name,
            job.id = fired.job_id.as_deref().unwrap_or(""),
            "schedule triggered"
        );
        Ok(TriggerResponse::Fired(Json(fired.into())))
    }
}
