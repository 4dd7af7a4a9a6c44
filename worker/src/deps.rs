//! What job handlers share.

use std::path::PathBuf;

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
    /// How analyses checkpoint and report.
    pub analysis: drover_analysis::job::RunConfig,
}
