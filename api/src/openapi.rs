//! The OpenAPI document: every operation, generated from the code.

use poem_openapi::{OpenApiService, Tags};

use crate::routes::jobs::JobsApi;
use crate::routes::sse::SseApi;
use crate::state::AppState;

/// The groups of operations in the docs.
#[derive(Tags)]
pub enum ApiTags {
    /// Submitting and reading jobs.
    Jobs,
    /// Following jobs and queues live, as Server-Sent Events.
    Events,
}

/// The API's operations, as one service.
pub type Apis = (JobsApi, SseApi);

/// Builds the OpenAPI service over `state`.
pub fn service(state: AppState) -> OpenApiService<Apis, ()> {
    let apis = (
        JobsApi {
            state: state.clone(),
        },
        SseApi { state },
    );
    OpenApiService::new(apis, "Drover", env!("CARGO_PKG_VERSION")).description(
        "Durable job queues: submit export, analysis, aggregation and cleanup jobs, follow \
             their progress, and run the queues.",
    )
}
