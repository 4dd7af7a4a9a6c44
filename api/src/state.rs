//! What every request handler shares.

use std::sync::Arc;

use drover_jobs::connect::Queues;
use drover_queue::Redis;
use metrics_exporter_prometheus::PrometheusHandle;
use sea_orm::DatabaseConnection;

use crate::auth::cache::KeyCache;
use crate::auth::rate_limit::RateLimiter;
use crate::config::ApiConfig;
use crate::relay::Relay;

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
    keys: KeyCache,
    limiter: RateLimiter,
    relay: Relay,
    /// When the queue gauges were last read from Redis; held while they are read, so
    /// that scrapes at the same moment share one read.
    gauges_read_at: tokio::sync::Mutex<Option<std::time::Instant>>,
}

impl AppState {
    /// Bundles the connections, with the key cache and the rate limiter over them.
    #[must_use]
    pub fn new(
        config: ApiConfig,
        redis: Redis,
        queues: Queues,
        db: DatabaseConnection,
        metrics: PrometheusHandle,
    ) -> Self {
        let keys = KeyCache::new(
            db.clone(),
            config.key_cache_ttl,
            config.auth_failures_per_minute,
        )
        .refusing_dev_keys(!config.common.is_dev());
        let limiter = RateLimiter::new(
            redis.clone(),
            &config.common.namespace,
            config.rate_submitter,
            config.rate_admin,
        );
        let relay = Relay::new(queues.clone(), config.sse.clone());
        Self {
            inner: Arc::new(Inner {
                keys,
                limiter,
                relay,
                gauges_read_at: tokio::sync::Mutex::new(None),
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

    /// Verifies API keys.
    #[must_use]
    pub fn keys(&self) -> &KeyCache {
        &self.inner.keys
    }

    /// The per-key rate limits.
    #[must_use]
    pub fn limiter(&self) -> &RateLimiter {
        &self.inner.limiter
    }

    /// When the queue gauges were last read (see `routes::health::metrics`).
    #[must_use]
    pub fn gauges_read_at(&self) -> &tokio::sync::Mutex<Option<std::time::Instant>> {
        &self.inner.gauges_read_at
    }

    /// The process's event relay (Server-Sent Events).
    #[must_use]
    pub fn relay(&self) -> &Relay {
        &self.inner.relay
    }
}
