//! The live workers. Admin keys only.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::views::at;
use crate::auth::AdminKey;
use crate::error::ApiError;
use crate::openapi::ApiTags;
use crate::state::AppState;

/// A worker, seen through its heartbeats.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Worker")]
pub struct WorkerView {
    /// The worker's id (queue, host, process and a random part).
    pub id: String,
    /// The queue it serves.
    pub queue: String,
    /// Its last heartbeat.
    pub last_seen_at: DateTime<Utc>,
    /// What it says of itself: host, pid, concurrency, started_at.
    pub info: serde_json::Value,
}

/// The live workers.
#[derive(Debug, Clone, Object)]
pub struct WorkerList {
    /// Newest heartbeat first, queue by queue.
    pub workers: Vec<WorkerView>,
}

#[derive(ApiResponse)]
enum ListWorkersResponse {
    /// Every worker that sent a heartbeat recently (within its heartbeat's lifetime).
    #[oai(status = 200)]
    Ok(Json<WorkerList>),
}

/// The live workers.
pub struct WorkersApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Workers")]
impl WorkersApi {
    /// List the live workers
    #[oai(path = "/workers", method = "get", operation_id = "list_workers")]
    async fn list_workers(
        &self,
        _key: AdminKey,
        state: Data<&AppState>,
    ) -> Result<ListWorkersResponse, ApiError> {
        let per_queue = futures::future::join_all(
            state
                .queues()
                .all()
                .map(|(name, q)| async move { (name, q.workers().await) }),
        )
        .await;
        let mut workers = Vec::new();
        for (name, found) in per_queue {
            for w in found? {
                workers.push(WorkerView {
                    id: w.id,
                    queue: name.as_str().to_owned(),
                    last_seen_at: at(w.last_seen_ms),
                    info: w.info,
                });
            }
        }
        Ok(ListWorkersResponse::Ok(Json(WorkerList { workers })))
    }
}
