//! The API's operations, one module per resource.

pub mod health;
pub mod jobs;
pub mod sse;
pub mod views;

use drover_jobs::QueueName;

use crate::error::ApiError;

/// The queue named in a path, or a 404 that lists the queues.
pub fn queue_name(name: &str) -> Result<QueueName, ApiError> {
    name.parse::<QueueName>()
        .map_err(|e| ApiError::not_found(e.to_string()))
}
