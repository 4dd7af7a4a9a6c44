//! kill -9 of the real `drover-worker` in the middle of archiving: no job is lost, and
//! none is in Redis and in the archive as two different records.
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

use std::time::Duration;

use drover_entities::job_history;
use drover_queue::worker::WakeHub;
use drover_queue::{JobState, Queue, QueueDefaults, Redis, RedisConfig};
use drover_tests::finish::{TestJob, run_to_end};
use drover_tests::procs::Proc;
use drover_tests::{TestDb, eventually_async};
use sea_orm::{EntityTrait, PaginatorTrait};

const JOBS: u64 = 6000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_archiving_loses_nothing() {
    for t in TestDb::all().await {
        let url = drover_tests::shared_redis_url();
        let redis = Redis::new(RedisConfig::new(url.clone())).unwrap();
        let ns = drover_tests::namespace();
        let hub = WakeHub::start(redis.clone(), &ns);
        let q = Queue::new(redis.clone(), &ns, "cleanup", QueueDefaults::default()).unwrap();
        run_to_end(&q, &hub, (0..JOBS).map(TestJob::ok).collect(), JOBS).await;
        let data = tempfile::tempdir().unwrap();
        let env = vec![
            ("REDIS_URL", url.clone()),
            ("DATABASE_URL", t.url().to_owned()),
            ("DROVER_REDIS_NAMESPACE", ns.clone()),
            ("DROVER_DATA_DIR", data.path().display().to_string()),
            ("DROVER_WORKER_QUEUES", "cleanup".to_owned()),
            ("DROVER_WORKER_METRICS_ADDR", "off".to_owned()),
            ("DROVER_RETENTION_COMPLETED_COUNT", "0".to_owned()),
            ("DROVER_RETENTION_BATCH", "100".to_owned()),
            ("DROVER_RETENTION_INTERVAL_MS", "50".to_owned()),
        ];
        let db = drover_jobs::connect::database(t.url()).await.unwrap();
        let mut worker = Proc::start("drover-worker", &env);
        eventually_async(Duration::from_secs(60), "archiving under way", || async {
            let rows = job_history::Entity::find().count(&db).await.ok()?;
            (rows > 0 && rows < JOBS).then_some(())
        })
        .await;
        worker.kill9();
        let rows = job_history::Entity::find().all(&db).await.unwrap();
        let mut both = 0;
        let mut in_redis = 0;
        for r in &rows {
            if let Some(live) = q.get(&r.id).await.unwrap() {
                both += 1;
                assert_eq!(live.state, JobState::Completed);
                assert_eq!(
                    live.finished_at,
                    r.finished_at.map(|t| t.timestamp_millis())
                );
            }
        }
        in_redis += q.overview().await.unwrap().counts.completed;
        assert_eq!(
            rows.len() as u64 + in_redis - both,
            JOBS,
            "{:?}",
            t.engine()
        );
        assert!(in_redis > 0, "killed before the end");

        // A new worker takes over once the dead one's lock expires, and finishes.
        let mut worker = Proc::start("drover-worker", &env);
        eventually_async(Duration::from_secs(90), "retention to finish", || async {
            (q.overview().await.ok()?.counts.completed == 0).then_some(())
        })
        .await;
        worker.terminate(Duration::from_secs(30));
        assert_eq!(job_history::Entity::find().count(&db).await.unwrap(), JOBS);
    }
}
