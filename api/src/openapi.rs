//! The OpenAPI document: every operation, generated from the code.
//!
//! [`service`] gathers the per-resource API structs. [`spec_json`] is the document
//! served at `/openapi.json` (and shown at `/docs`): poem-openapi's, with two things
//! poem-openapi cannot express added:
//!
//! - our request bodies reject unknown fields (serde's `deny_unknown_fields`, see
//!   [`crate::payload`]), so every object schema reachable from a request body gets
//!   `additionalProperties: false`: generated clients and contract tests then know that
//!   extra fields are refused;
//! - the job a submission returns is linked (OpenAPI `links`) to the operations that take
//!   its id, so tools can follow a job from its submission.

use std::collections::BTreeSet;

use poem_openapi::{OpenApiService, Tags};
use serde_json::Value;

use crate::routes::aggregates::AggregatesApi;
use crate::routes::analysis::AnalysisApi;
use crate::routes::bulk::BulkApi;
use crate::routes::datasets::DatasetsApi;
use crate::routes::exports::ExportsApi;
use crate::routes::history::HistoryApi;
use crate::routes::jobs::JobsApi;
use crate::routes::queues::QueuesApi;
use crate::routes::schedules::SchedulesApi;
use crate::routes::search::SearchApi;
use crate::routes::sse::SseApi;
use crate::routes::workers::WorkersApi;

/// The groups of operations in the docs.
#[derive(Tags)]
pub enum ApiTags {
    /// Submitting, reading and steering jobs.
    Jobs,
    /// Running the queues: metrics, pause, resume, clean.
    Queues,
    /// The workers that run the jobs.
    Workers,
    /// Following jobs and queues live, as Server-Sent Events.
    Events,
    /// Export files: list, read, download (with `Range` and `ETag`).
    Exports,
    /// Hourly and daily aggregates of the queues' counters.
    Aggregates,
    /// Cron schedules that enqueue jobs.
    Schedules,
    /// Uploaded CSV datasets and their sentiment analyses.
    Datasets,
}

/// The API's operations, as one service.
pub type Apis = (
    JobsApi,
    QueuesApi,
    WorkersApi,
    SseApi,
    ExportsApi,
    AggregatesApi,
    SchedulesApi,
    HistoryApi,
    DatasetsApi,
    AnalysisApi,
    BulkApi,
    SearchApi,
);

const DESCRIPTION: &str = "\
Durable job queues: submit export, analysis, aggregation and cleanup jobs, follow their \
progress, and run the queues.

**Authentication.** Send an API key as `Authorization: Bearer <key>`. Submitter keys may \
submit and read jobs; admin keys may do everything. A missing or unknown key answers 401, \
a key whose role does not allow the operation 403.

**Rate limits.** Each key has a token bucket; an empty one answers 429 with `Retry-After` \
(seconds).

**Errors.** Every 4xx and 5xx answers `{\"error\": {\"code\", \"message\", \"details\"}}`; \
`details.field` names the field at fault in a 400. A rejected request changes nothing.

**Events.** `GET /api/v1/jobs/{id}/events` and `GET /api/v1/sse/events` stream events as \
Server-Sent Events; reconnect with `Last-Event-ID` to receive what you missed.

**Request ids.** Every response carries `X-Request-Id` (the request's own, if it sent a \
sane one); a submitted job keeps it as `request_id`.";

/// Builds the OpenAPI service.
#[must_use]
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            JobsApi,
            QueuesApi,
            WorkersApi,
            SseApi,
            ExportsApi,
            AggregatesApi,
            SchedulesApi,
            HistoryApi,
            DatasetsApi,
            AnalysisApi,
            BulkApi,
            SearchApi,
        ),
        "Drover",
        env!("CARGO_PKG_VERSION"),
    )
    .description(DESCRIPTION)
}

/// The document served at `/openapi.json` (see the module documentation).
#[must_use]
pub fn spec_json(service: &OpenApiService<Apis, ()>) -> String {
    let raw = service.spec();
    let Ok(mut doc) = serde_json::from_str::<Value>(&raw) else {
        return raw;
    };
    close_request_schemas(&mut doc);
    describe_event_streams(&mut doc);
    link_submitted_jobs(&mut doc);
    serde_json::to_string_pretty(&doc).unwrap_or(raw)
}

/// The Swagger UI page, showing [`spec_json`]'s document.
#[must_use]
pub fn swagger_html(service: &OpenApiService<Apis, ()>) -> String {
    service
        .swagger_ui_html()
        .replacen(&service.spec(), &spec_json(service), 1)
}

/// Sets `additionalProperties: false` on the object schemas request bodies use.
fn close_request_schemas(doc: &mut Value) {
    let mut todo = Vec::new();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for op in paths
            .values_mut()
            .filter_map(Value::as_object_mut)
            .flat_map(|p| p.values_mut())
        {
            if let Some(body) = op.get_mut("requestBody") {
                collect_refs(body, &mut todo);
                // Inline forms (a dataset upload) take only the fields they list.
                if let Some(content) = body.get_mut("content").and_then(Value::as_object_mut) {
                    for media in content.values_mut() {
                        if let Some(schema) = media.get_mut("schema").and_then(Value::as_object_mut)
                            && schema.contains_key("properties")
                        {
                            schema.insert("additionalProperties".to_owned(), Value::Bool(false));
                        }
                    }
                }
            }
        }
    }
    let mut closed = BTreeSet::new();
    while let Some(name) = todo.pop() {
        if !closed.insert(name.clone()) {
            continue;
        }
        let Some(schema) = doc.pointer_mut(&format!("/components/schemas/{name}")) else {
            continue;
        };
        collect_refs(schema, &mut todo);
        if let Some(obj) = schema.as_object_mut()
            && obj.get("type").and_then(Value::as_str) == Some("object")
            && obj.contains_key("properties")
        {
            obj.insert("additionalProperties".to_owned(), Value::Bool(false));
            let required: BTreeSet<String> = obj
                .get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
                for (name, prop) in props.iter_mut() {
                    // A field with a default is filled when absent, and refuses `null`.
                    if !required.contains(name) && !has_default(prop) {
                        make_nullable(prop);
                    }
                }
            }
        }
    }
}

/// Whether a property's schema has a `default` (itself, or in one of its `allOf`).
fn has_default(prop: &Value) -> bool {
    prop.get("default").is_some()
        || prop
            .get("allOf")
            .and_then(Value::as_array)
            .is_some_and(|all| all.iter().any(|s| s.get("default").is_some()))
}

/// Says that an optional field of a request body may also be `null`: the parsers read
/// `null` as "absent", so the document must not call it invalid.
fn make_nullable(prop: &mut Value) {
    let Some(obj) = prop.as_object_mut() else {
        return;
    };
    if let Some(r) = obj.remove("$ref") {
        // OpenAPI 3.0 ignores the siblings of a `$ref`: wrap it.
        obj.insert("allOf".to_owned(), serde_json::json!([{ "$ref": r }]));
    }
    obj.insert("nullable".to_owned(), Value::Bool(true));
}

/// What a `text/event-stream` response holds, one message at a time: poem-openapi
/// describes the stream as an array of events, while the tools that check streams
/// (schemathesis) read the schema as that of each message (`event`, `id`, `data`).
fn describe_event_streams(doc: &mut Value) {
    let message = serde_json::json!({
        "type": "object",
        "description": "One Server-Sent Events message. `data` is JSON: an `Event` (see \
            #/components/schemas/Event) for job and queue events, and a notice object for \
            `stream:gap`, `stream:lagged` and `stream:error`.",
        "required": ["data"],
        "properties": {
            "event": { "type": "string" },
            "id": { "type": "string" },
            "data": { "type": "string" },
            "retry": { "type": "integer" }
        }
    });
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for op in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|p| p.values_mut())
    {
        let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
            continue;
        };
        for r in responses.values_mut() {
            if let Some(stream) = r.pointer_mut("/content/text~1event-stream") {
                stream["schema"] = message.clone();
            }
        }
    }
}

/// Links each typed submit operation's 201 to the operations on the job it created.
fn link_submitted_jobs(doc: &mut Value) {
    for queue in drover_jobs::QueueName::ALL {
        let by_queue_and_id = serde_json::json!({
            "queue": queue.as_str(),
            "id": "$response.body#/id",
        });
        let mut links = serde_json::Map::new();
        for (name, op, params) in [
            ("GetJob", "get_job", &by_queue_and_id),
            ("DeleteJob", "delete_job", &by_queue_and_id),
            ("RetryJob", "retry_job", &by_queue_and_id),
            ("PromoteJob", "promote_job", &by_queue_and_id),
            (
                "FindJob",
                "find_job",
                &serde_json::json!({ "id": "$response.body#/id" }),
            ),
        ] {
            links.insert(
                name.to_owned(),
                serde_json::json!({ "operationId": op, "parameters": params }),
            );
        }
        // Only the 201: the job a replayed idempotency key returns (200) may be gone since.
        let pointer = format!(
            "/paths/~1api~1v1~1queues~1{}~1jobs/post/responses/201",
            queue.as_str()
        );
        if let Some(r) = doc.pointer_mut(&pointer).and_then(Value::as_object_mut) {
            r.insert("links".to_owned(), Value::Object(links));
        }
    }
}

/// The methods of every path of the document: `(path template, "GET, POST")`, for the
/// `Allow` header of a 405.
#[must_use]
pub fn allowed_methods(spec: &str) -> Vec<(String, String)> {
    let Ok(doc) = serde_json::from_str::<Value>(spec) else {
        return Vec::new();
    };
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        return Vec::new();
    };
    paths
        .iter()
        .filter_map(|(path, item)| {
            let mut methods: Vec<String> = item
                .as_object()?
                .keys()
                .map(|m| m.to_ascii_uppercase())
                .collect();
            // The router answers HEAD wherever it answers GET.
            if methods.iter().any(|m| m == "GET") {
                methods.push("HEAD".to_owned());
            }
            methods.sort();
            Some((path.clone(), methods.join(", ")))
        })
        .collect()
}

/// The schema names `$ref`'d anywhere inside `v`.
fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str)
                && let Some(name) = r.strip_prefix("#/components/schemas/")
            {
                out.push(name.to_owned());
            }
            m.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}
