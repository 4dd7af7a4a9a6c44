//! kill -9 of the real `drover-worker` in the middle of an export: no partial file is
//! ever in `exports/`, and the retried attempt (the job rescued once its lease ran out)
//! writes a complete, correct file, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use drover_entities::{export as exports, job_history};
use drover_jobs::data_dir;
use drover_queue::{JobState, NewJob, Queue, Redis, RedisConfig};
use drover_tests::procs::Proc;
use drover_tests::{TestDb, eventually_async};
use sea_orm::{ActiveValue::Set, EntityTrait, QueryOrder, TransactionTrait};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Enough rows that the export takes a while even in a release build.
const ROWS: usize = 120_000;

fn files_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

async fn fill(db: &sea_orm::DatabaseConnection) {
    let t0 = chrono::Utc::now() - chrono::Duration::hours(2);
    let txn = db.begin().await.unwrap();
    let rows: Vec<job_history::ActiveModel> = (0..ROWS)
        .map(|i| {
            let t = t0 + chrono::Duration::milliseconds(i as i64);
            job_history::ActiveModel {
                id: Set(format!("01KEXPORTKILL{i:013}")),
                queue: Set("export".to_owned()),
                state: Set("completed".to_owned()),
                payload: Set(
                    json!({"n": i, "text": "some payload to make the rows longer"}).to_string(),
                ),
                result: Set(Some(json!({"ok": true, "i": i}).to_string())),
                errors: Set("[]".to_owned()),
                attempts: Set(1),
                max_attempts: Set(3),
                priority: Set(0),
                created_at: Set(t),
                started_at: Set(Some(t)),
                finished_at: Set(Some(t)),
                archived_at: Set(t),
                ..Default::default()
            }
        })
        .collect();
    for chunk in rows.chunks(500) {
        job_history::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await
            .unwrap();
    }
    txn.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_export_leaves_no_partial_file_and_the_retry_completes() {
    for t in TestDb::all().await {
        let engine = t.engine();
        let db = drover_jobs::connect::database(t.url()).await.unwrap();
        drover_jobs::connect::migrate(&db).await.unwrap();
        fill(&db).await;
        let url = drover_tests::shared_redis_url();
        let redis = Redis::new(RedisConfig::new(url.clone())).unwrap();
        let ns = drover_tests::namespace();
        let q = Queue::new(
            redis,
            &ns,
            "export",
            drover_jobs::QueueName::Export.defaults(),
        )
        .unwrap();
        let data = tempfile::tempdir().unwrap();
        let env = vec![
            ("REDIS_URL", url.clone()),
            ("DATABASE_URL", t.url().to_owned()),
            ("DROVER_REDIS_NAMESPACE", ns.clone()),
            ("DROVER_DATA_DIR", data.path().display().to_string()),
            ("DROVER_WORKER_QUEUES", "export".to_owned()),
            ("DROVER_WORKER_METRICS_ADDR", "off".to_owned()),
            // The killed worker's job comes back soon after its lease runs out.
            ("DROVER_LEASE_MS", "2000".to_owned()),
            ("DROVER_RESCUE_INTERVAL_MS", "200".to_owned()),
        ];
        let tmp = data_dir::tmp_dir(data.path());
        let out = data_dir::exports_dir(data.path());
        let id = q
            .enqueue(
                NewJob::new(&json!({"source": "job_history", "format": "jsonl", "gzip": true}))
                    .unwrap(),
            )
            .await
            .unwrap()
            .id;
        let mut worker = Proc::start_exe(env!("CARGO_BIN_EXE_drover-worker"), &env);
        // Kill it once its part file holds some bytes: in the middle of writing.
        let first_part = data_dir::export_part_name(&id, 1);
        eventually_async(
            Duration::from_secs(60),
            "the export to be writing",
            || async {
                let len = std::fs::metadata(tmp.join(&first_part)).ok()?.len();
                (len > 0).then_some(())
            },
        )
        .await;
        worker.kill9();
        assert!(
            files_in(&out).is_empty(),
            "{engine:?}: a killed export left {:?} in exports/",
            files_in(&out)
        );
        assert!(exports::Entity::find().all(&db).await.unwrap().is_empty());
        assert_eq!(q.get(&id).await.unwrap().unwrap().state, JobState::Active);

        // Another worker rescues the job and runs a second attempt to the end.
        let mut worker = Proc::start_exe(env!("CARGO_BIN_EXE_drover-worker"), &env);
        let job = eventually_async(Duration::from_secs(120), "the retried export", || async {
            let j = q.get(&id).await.ok()??;
            assert_ne!(j.state, JobState::Failed, "{:?}", j.errors);
            (j.state == JobState::Completed).then_some(j)
        })
        .await;
        worker.terminate(Duration::from_secs(30));
        assert_eq!(job.attempts, 2, "{engine:?}");
        let m = exports::Entity::find_by_id(id.clone())
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            files_in(&out),
            std::slice::from_ref(&m.file_name),
            "{engine:?}: one file, the retry's"
        );
        assert_eq!(
            m.file_name,
            data_dir::export_file_name(&id, 2, "jsonl", true)
        );
        // The dead attempt's part file was removed by the retry; nothing else is left.
        assert!(
            files_in(&tmp).is_empty(),
            "{engine:?}: {:?}",
            files_in(&tmp)
        );
        let raw = std::fs::read(out.join(&m.file_name)).unwrap();
        assert_eq!(raw.len() as i64, m.bytes);
        assert_eq!(hex::encode(Sha256::digest(&raw)), m.sha256);
        let mut text = String::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_string(&mut text)
            .unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let want: Vec<String> = job_history::Entity::find()
            .order_by_asc(job_history::Column::Id)
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids.len(), ROWS, "{engine:?}");
        assert_eq!(ids, want, "{engine:?}");
        assert_eq!(m.rows, ROWS as i64);
    }
}
