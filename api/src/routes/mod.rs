//! The API's operations, one module per resource.
//!
//! - [`jobs`]: submit, list and read jobs (submitter keys).
//! - [`job_admin`]: delete, retry and promote jobs (admin keys).
//! - [`queues`]: list queues, metrics, pause, resume, clean (admin keys).
//! - [`workers`]: the live workers (admin keys).
//! - [`health`]: liveness, readiness and Prometheus metrics (no key).
//! - [`submit`], [`payload_docs`], [`views`], [`lookup`]: what those share.

pub mod health;
pub mod job_admin;
pub mod jobs;
pub mod lookup;
pub mod payload_docs;
pub mod queues;
pub mod submit;
pub mod views;
pub mod workers;

use drover_jobs::QueueName;

use crate::error::ApiError;

/// The queue named in a path, or a 404 that lists the queues.
pub fn queue_name(name: &str) -> Result<QueueName, ApiError> {
    name.parse::<QueueName>()
        .map_err(|e| ApiError::not_found(e.to_string()))
}
