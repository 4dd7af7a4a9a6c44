//! What job handlers share.

use std::path::PathBuf;
use std::time::Duration;

use drover_jobs::connect::Queues;
use drover_queue::Redis;
use sea_orm::DatabaseConnection;

/// Connections and paths every handler may use (apalis `Data<Deps>`).
#[derive(Clone)]
pub struct Deps {
    pub db: DatabaseConnection,
    pub redis: Redis,
    pub queues: Queues,
    /// Where files (exports, uploads) live.
    pub data_dir: PathBuf,
    /// How long export files are kept (`DROVER_EXPORT_TTL_HOURS`).
    pub export_ttl: Duration,
    /// How long the per-minute counters live in Redis (`DROVER_STATS_WINDOW_HOURS`):
    /// an aggregation of a bucket older than this would find them gone.
    pub stats_window: Duration,
    /// The Redis key namespace (`DROVER_REDIS_NAMESPACE`).
    pub namespace: String,
    /// How analyses checkpoint and report.
    pub analysis: drover_analysis::job::RunConfig,
}

impl Deps {
    /// Every queue's handle, in name order.
    #[must_use]
    pub fn queue_list(&self) -> Vec<drover_queue::Queue> {
        self.queues.all().map(|(_, q)| q.clone()).collect()
    }
}
