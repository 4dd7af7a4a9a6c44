//! `drover up`: the API, the worker and the scheduler in one process, and a Redis of
//! its own when none answers at `REDIS_URL`.

use std::time::Duration;

use anyhow::Context as _;
use drover_api::config::ApiConfig;
use drover_jobs::env::Env;
use drover_scheduler::config::SchedulerConfig;
use drover_worker::config::WorkerConfig;
use tokio_util::sync::CancellationToken;

use crate::embedded_redis::{self, EmbeddedRedis};

/// The `redis-server` program `drover up` starts (`DROVER_REDIS_SERVER`, default `redis-server`).
fn redis_server_program(env: &Env) -> String {
    env.string("DROVER_REDIS_SERVER", "redis-server")
}

/// Runs the stack until Ctrl-C or SIGTERM.
pub async fn run(env: &Env) -> anyhow::Result<()> {
    let mut api = ApiConfig::from_env(env)?;
    let mut worker = WorkerConfig::from_env(env)?;
    let mut scheduler = SchedulerConfig::from_env(env)?;
    drover_jobs::telemetry::init_tracing(api.common.log_format, &api.common.log_filter);
    // One process, one recorder: the API's /metrics shows the worker's series too.
    worker.metrics_addr = None;
    scheduler.metrics_addr = None;
    // Migrate once, before the parts start, instead of racing each other.
    let db = drover_jobs::connect::database(&api.common.database_url).await?;
    if api.common.auto_migrate {
        drover_jobs::connect::migrate(&db).await?;
        api.common.auto_migrate = false;
        worker.common.auto_migrate = false;
        scheduler.common.auto_migrate = false;
    }
    // In development, a stack nobody can call is no use: with no key at all, make an
    // admin key and show it. (In production the API refuses to start without one.)
    let dev_key = if api.common.is_dev() {
        drover_api::auth::keys::sync_env_keys(&db, &api.api_keys)
            .await
            .context("store the keys of DROVER_API_KEYS")?;
        crate::keys::dev_admin_key(&db).await?
    } else {
        None
    };
    db.close().await.ok();

    let mut embedded = None;
    let url = api.common.redis_url.clone();
    if redis_answers(&url).await {
        tracing::info!(redis = %drover_queue::connection::redact(&url), "using the Redis at REDIS_URL");
    } else {
        let program = redis_server_program(env);
        if !embedded_redis::available(&program).await {
            anyhow::bail!(
                "no Redis answers at {} and {program} is not installed: install Redis \
                 (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) \
                 or set REDIS_URL to a running one",
                drover_queue::connection::redact(&url)
            );
        }
        let r = EmbeddedRedis::start(&program, &api.common.data_dir).await?;
        tracing::info!(redis = r.url(), data = %r.dir().display(), "no Redis answered at REDIS_URL: started redis-server");
        for c in [&mut api.common, &mut worker.common, &mut scheduler.common] {
            c.redis_url = r.url();
        }
        embedded = Some(r);
    }

    let addr = api.addr;
    let stop = CancellationToken::new();
    let result = {
        let api_task = tokio::spawn(drover_api::serve(api, stop.clone().cancelled_owned()));
        let worker_task = tokio::spawn(drover_worker::run(worker, stop.clone().cancelled_owned()));
        let scheduler_task = tokio::spawn(drover_scheduler::run(
            scheduler,
            stop.clone().cancelled_owned(),
        ));
        println!();
        println!("  Drover is up.");
        println!("    API      http://{addr}/api/v1");
        println!("    docs     http://{addr}/docs");
        println!("    metrics  http://{addr}/metrics");
        if let Some(key) = &dev_key {
            println!();
            println!("  No API key was configured, so this development admin key was made:");
            println!("    {key}");
            println!("  It is shown only now (only its hash is stored). Use it as");
            println!("    curl -H 'Authorization: Bearer {key}' http://{addr}/api/v1/queues");
            println!("  and make more with `drover keys create --role admin|submitter`.");
        }
        println!("  Ctrl-C stops everything.");
        println!();
        let mut tasks = [
            ("api", api_task),
            ("worker", worker_task),
            ("scheduler", scheduler_task),
        ];
        // Wait for the signal, or for a part to stop by itself (it failed): then stop all.
        let first = {
            let signal = drover_jobs::shutdown::signal();
            tokio::pin!(signal);
            let any = futures::future::select_all(tasks.iter_mut().map(|(_, t)| t));
            tokio::select! {
                () = &mut signal => None,
                (res, i, _) = any => Some((i, res)),
            }
        };
        stop.cancel();
        let mut failure = None;
        if let Some((i, res)) = first {
            failure = Some(
                outcome(tasks[i].0, res)
                    .err()
                    .unwrap_or_else(|| anyhow::anyhow!("{} stopped unexpectedly", tasks[i].0)),
            );
        }
        for (name, task) in tasks {
            if task.is_finished() && failure.is_some() {
                continue;
            }
            match tokio::time::timeout(Duration::from_secs(60), task).await {
                Ok(res) => {
                    if let Err(e) = outcome(name, res)
                        && failure.is_none()
                    {
                        failure = Some(e);
                    }
                }
                Err(_) => tracing::warn!(part = name, "did not stop within 60 s"),
            }
        }
        failure.map_or(Ok(()), Err)
    };
    if let Some(mut r) = embedded {
        r.stop().await;
        tracing::info!("redis-server stopped");
    }
    result
}

fn outcome(
    name: &str,
    res: Result<anyhow::Result<()>, tokio::task::JoinError>,
) -> anyhow::Result<()> {
    res.with_context(|| format!("{name} panicked"))?
        .with_context(|| format!("{name} failed"))
}

async fn redis_answers(url: &str) -> bool {
    let Ok(redis) = drover_queue::Redis::new(drover_queue::RedisConfig {
        // Generous: a loaded machine must not make drover up start a second Redis.
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(2),
        ..drover_queue::RedisConfig::new(url)
    }) else {
        return false;
    };
    redis.ping().await.is_ok()
}
