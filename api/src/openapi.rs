//! The OpenAPI document: every operation, generated from the code.

use poem_openapi::{OpenApiService, Tags};

use crate::routes::jobs::JobsApi;
use crate::state::AppState;

/// The groups of operations in the docs.
#[derive(Tags)]
pub enum ApiTags {
    /// Submitting and reading jobs.
    Jobs,
}

/// The API's operations, as one service.
pub type Apis = JobsApi;

/// Builds the OpenAPI service over `state`.
pub fn service(state: AppState) -> OpenApiService<Apis, ()> {
    OpenApiService::new(JobsApi { state }, "Drover", env!("CARGO_PKG_VERSION")).description(
        "Durable job queues: submit export, analysis, aggregation and cleanup jobs, follow \
             their progress, and run the queues.",
    )
}
