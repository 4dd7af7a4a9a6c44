//! Liveness, readiness and metrics.

use std::collections::BTreeMap;
use std::time::Duration;

use poem::web::Data;
use poem::{IntoResponse, handler, http::StatusCode};

use crate::state::AppState;

/// How long a health probe waits for Redis or the database.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

async fn services(state: &AppState) -> BTreeMap<&'static str, &'static str> {
    let redis = tokio::time::timeout(PROBE_TIMEOUT, state.redis().ping()).await;
    let db = tokio::time::timeout(
        PROBE_TIMEOUT,
        drover_jobs::connect::ping_database(state.db()),
    )
    .await;
    let up = |ok: bool| if ok { "up" } else { "down" };
    BTreeMap::from([
        ("redis", up(matches!(redis, Ok(Ok(()))))),
        ("database", up(matches!(db, Ok(Ok(()))))),
    ])
}

/// Liveness: 200 while the process serves requests, with the state of what it uses.
#[handler]
pub async fn health(state: Data<&AppState>) -> impl IntoResponse {
    let services = services(&state).await;
    poem::web::Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "services": services,
    }))
}

/// Readiness: 200 when Redis and the database both answer, 503 otherwise.
#[handler]
pub async fn ready(state: Data<&AppState>) -> impl IntoResponse {
    let services = services(&state).await;
    let ready = services.values().all(|s| *s == "up");
    let body = poem::web::Json(serde_json::json!({
        "status": if ready { "ready" } else { "unavailable" },
        "services": services,
    }));
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    body.with_status(status)
}

/// Prometheus metrics of this process, and the state of every queue read from Redis
/// (so any API replica reports the same queue figures).
///
/// The queue figures cost a few Redis scripts per queue, and `/metrics` needs no key:
/// they are read at most once per `DROVER_METRICS_QUEUE_CACHE_MS` (1 s), and scrapes
/// that arrive while they are being read wait for that read instead of starting their
/// own.
#[handler]
pub async fn metrics(state: Data<&AppState>) -> impl IntoResponse {
    {
        let mut read_at = state.gauges_read_at().lock().await;
        let ttl = state.config().metrics_queue_cache;
        if read_at.is_none_or(|t| t.elapsed() >= ttl) {
            refresh_queue_gauges(&state).await;
            ::metrics::counter!("drover_api_queue_gauge_reads_total").increment(1);
            *read_at = Some(std::time::Instant::now());
        }
    }
    state
        .metrics()
        .render()
        .with_content_type("text/plain; version=0.0.4")
}

/// Sets the per-queue gauges: jobs per state, oldest waiting age, paused, live workers.
/// When Redis does not answer they keep their last values and `drover_redis_up` says 0.
async fn refresh_queue_gauges(state: &AppState) {
    let reads = futures::future::join_all(state.queues().all().map(|(name, q)| async move {
        let overview = tokio::time::timeout(PROBE_TIMEOUT, q.overview()).await;
        let workers = tokio::time::timeout(PROBE_TIMEOUT, q.workers()).await;
        (name, overview, workers)
    }))
    .await;
    let mut up = true;
    for (name, overview, workers) in reads {
        let queue = name.as_str();
        match overview {
            Ok(Ok(o)) => {
                for st in drover_queue::JobState::ALL {
                    ::metrics::gauge!("drover_queue_jobs", "queue" => queue, "state" => st.as_str())
                        .set(o.counts.get(st) as f64);
                }
                let age = o.oldest_waiting_age_ms.unwrap_or(0) as f64 / 1000.0;
                ::metrics::gauge!("drover_queue_oldest_waiting_seconds", "queue" => queue).set(age);
                ::metrics::gauge!("drover_queue_paused", "queue" => queue)
                    .set(f64::from(u8::from(o.paused)));
            }
            _ => up = false,
        }
        if let Ok(Ok(w)) = workers {
            ::metrics::gauge!("drover_workers", "queue" => queue).set(w.len() as f64);
        }
    }
    ::metrics::gauge!("drover_redis_up").set(f64::from(u8::from(up)));
    if let Ok(Ok(info)) = tokio::time::timeout(
        PROBE_TIMEOUT,
        state
            .redis()
            .query::<redis::Value>(redis::cmd("INFO").arg("memory")),
    )
    .await
        && let Some((used, max)) = fullest_node(&info)
    {
        // `maxmemory` 0 means no limit: the alert on memory then never fires.
        ::metrics::gauge!("drover_redis_used_memory_bytes").set(used);
        ::metrics::gauge!("drover_redis_maxmemory_bytes").set(max);
    }
    let db = tokio::time::timeout(
        PROBE_TIMEOUT,
        drover_jobs::connect::ping_database(state.db()),
    )
    .await;
    ::metrics::gauge!("drover_database_up").set(f64::from(u8::from(matches!(db, Ok(Ok(()))))));
}

/// `used_memory` and `maxmemory` of the server, or on a cluster (where `INFO` goes to
/// every node and answers per node) of the node closest to its limit: the one that
/// runs out first stops its queues.
fn fullest_node(info: &redis::Value) -> Option<(f64, f64)> {
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        redis::Value::VerbatimString { text, .. } => Some(text.clone()),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let texts: Vec<String> = match info {
        redis::Value::Map(nodes) => nodes.iter().filter_map(|(_, v)| text(v)).collect(),
        v => text(v).into_iter().collect(),
    };
    let fill = |&(used, max): &(f64, f64)| if max > 0.0 { used / max } else { 0.0 };
    texts
        .iter()
        .filter_map(|t| Some((info_field(t, "used_memory")?, info_field(t, "maxmemory")?)))
        .max_by(|a, b| fill(a).total_cmp(&fill(b)).then(a.0.total_cmp(&b.0)))
}

/// A numeric field of an `INFO` reply (`name:value` lines).
fn info_field(info: &str, name: &str) -> Option<f64> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use redis::Value;

    use super::fullest_node;

    fn info(used: u64, max: u64) -> Value {
        Value::BulkString(
            format!(
                "# Memory\r\nused_memory:{used}\r\nused_memory_human:1M\r\nmaxmemory:{max}\r\n"
            )
            .into_bytes(),
        )
    }

    #[test]
    fn one_server_reports_its_memory() {
        assert_eq!(fullest_node(&info(10, 100)), Some((10.0, 100.0)));
        assert_eq!(fullest_node(&Value::Nil), None);
    }

    #[test]
    fn a_cluster_reports_the_node_closest_to_its_limit() {
        let nodes = Value::Map(vec![
            (Value::SimpleString("a:1".into()), info(50, 1000)),
            (Value::SimpleString("b:2".into()), info(40, 100)),
            (Value::SimpleString("c:3".into()), info(90, 1000)),
        ]);
        assert_eq!(fullest_node(&nodes), Some((40.0, 100.0)));
        // Without limits, the largest.
        let unlimited = Value::Map(vec![
            (Value::SimpleString("a:1".into()), info(50, 0)),
            (Value::SimpleString("b:2".into()), info(70, 0)),
        ]);
        assert_eq!(fullest_node(&unlimited), Some((70.0, 0.0)));
    }
}
