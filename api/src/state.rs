//! What every request handler shares.

use std::sync::Arc;

use drover_jobs::connect::Queues;
use drover_queue::Redis;
use metrics_exporter_prometheus::PrometheusHandle;
use sea_orm::DatabaseConnection;

use crate::config::ApiConfig;

/// The API's shared state. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: ApiConfig,
    redis: Redis,
    queues: Queues,
    db: DatabaseConnection,
    metrics: PrometheusHandle,
}

impl AppState {
    /// Bundles the connections.
    #[must_use]
    pub fn new(
        config: ApiConfig,
        redis: Redis,
        queues: Queues,
        db: DatabaseConnection,
        metrics: PrometheusHandle,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                redis,
                queues,
                db,
                metrics,
            }),
        }
    }

    #[must_use]
    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    #[must_use]
    pub fn redis(&self) -> &Redis {
        &self.inner.redis
    }

    #[must_use]
    pub fn queues(&self) -> &Queues {
        &self.inner.queues
    }

    #[must_use]
    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    #[must_use]
    pub fn metrics(&self) -> &PrometheusHandle {
        &self.inner.metrics
    }
}
