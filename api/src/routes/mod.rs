//! The API's operations, one module per resource.
//!
//! - [`jobs`]: submit, list and read jobs (submitter keys); delete, retry and promote
//!   them (admin keys; [`job_actions`]), many at once ([`bulk`]), and search them
//!   ([`search`]).
//! - [`queues`]: list queues, metrics, pause, resume, clean (admin keys).
//! - [`workers`]: the live workers (admin keys).
//! - [`exports`]: export files, listed, read and downloaded (submitter keys).
//! - [`aggregates`]: hourly and daily aggregates (submitter keys).
//! - [`schedules`]: cron schedules (read: any key; write and trigger: admin keys).
//! - [`history`]: the archive of finished jobs (submitter keys).
//! - [`datasets`], [`analysis`]: uploaded datasets and their analyses (submitter keys).
//! - [`health`]: liveness, readiness and Prometheus metrics (no key).
//! - [`submit`], [`payload_docs`], [`views`], [`lookup`]: what those share.

pub mod aggregates;
pub mod analysis;
pub mod bulk;
pub mod datasets;
pub mod exports;
pub mod health;
pub mod history;
pub mod job_actions;
pub mod jobs;
pub mod lookup;
pub mod payload_docs;
pub mod queues;
pub mod schedules;
pub mod search;
pub mod sse;
pub mod submit;
pub mod views;
pub mod workers;

use std::borrow::Cow;

use drover_jobs::QueueName;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseFromParameter, ParseResult, Type};

use crate::error::ApiError;

/// The queue named in a path, or a 404 that lists the queues.
pub fn queue_name(name: &str) -> Result<QueueName, ApiError> {
    name.parse::<QueueName>()
        .map_err(|e| ApiError::not_found(e.to_string()))
}

/// The `{queue}` of a path. The document lists the queues; any other name parses, and
/// the operation answers 404 for it (an unknown resource, not a malformed request).
#[derive(Debug, Clone)]
pub struct QueueParam(pub String);

impl QueueParam {
    /// The queue, or a 404 that lists the queues.
    pub fn queue(&self) -> Result<QueueName, ApiError> {
        queue_name(&self.0)
    }
}

impl Type for QueueParam {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "QueueName".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            enum_items: QueueName::ALL
                .iter()
                .map(|q| serde_json::Value::from(q.as_str()))
                .collect(),
            ..MetaSchema::new("string")
        }))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ParseFromParameter for QueueParam {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Ok(Self(value.to_owned()))
    }
}
