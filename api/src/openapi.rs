//! The OpenAPI document: every operation, generated from the code.
//!
//! [`service`] gathers the per-resource API structs. [`spec_json`] is the document
//! served at `/openapi.json` (and shown at `/docs`): poem-openapi's, with one fix. Our
//! request bodies reject unknown fields (serde's `deny_unknown_fields`, see
//! [`crate::payload`]), which poem-openapi cannot express, so every object schema
//! reachable from a request body gets `additionalProperties: false`; generated clients
//! and contract tests then know that extra fields are refused.

use std::collections::BTreeSet;

use poem_openapi::{OpenApiService, Tags};
use serde_json::Value;

use crate::routes::jobs::JobsApi;
use crate::routes::queues::QueuesApi;
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
}

/// The API's operations, as one service.
pub type Apis = (JobsApi, QueuesApi, WorkersApi);

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

**Request ids.** Every response carries `X-Request-Id` (the request's own, if it sent a \
sane one); a submitted job keeps it as `request_id`.";

/// Builds the OpenAPI service.
#[must_use]
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (JobsApi, QueuesApi, WorkersApi),
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
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for op in paths
            .values()
            .filter_map(Value::as_object)
            .flat_map(|p| p.values())
        {
            if let Some(body) = op.get("requestBody") {
                collect_refs(body, &mut todo);
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
        }
    }
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
