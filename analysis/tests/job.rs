//! One analysis attempt against a real database (SQLite, and PostgreSQL when
//! `TEST_DATABASE_URL` is set): results, summaries, checkpoints, resume, lease loss.
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

use std::path::Path;
use std::time::Duration;

use drover_analysis::job::{self, JobSpec, RunConfig, RunError};
use drover_analysis::scan::Scanner;
use drover_analysis::store;
use drover_migration::{Migrator, MigratorTrait};
use drover_tests::TestDb;
use sea_orm::{Database, DatabaseConnection};
use tokio_util::sync::CancellationToken;

async fn connect(t: &TestDb) -> DatabaseConnection {
    let db = Database::connect(t.url()).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    db
}

/// Writes `data` as dataset `id` under `dir`, as an upload would.
async fn add_dataset(db: &DatabaseConnection, dir: &Path, id: &str, data: &[u8]) {
    std::fs::create_dir_all(dir.join("datasets")).unwrap();
    let file = format!("{id}.csv");
    std::fs::write(dir.join("datasets").join(&file), data).unwrap();
    let mut s = Scanner::new(u64::MAX, 1 << 20);
    s.feed(data).unwrap();
    let scan = s.finish().unwrap();
    store::insert_dataset(db, id, "test.csv", &file, &scan)
        .await
        .unwrap();
}

fn reviews(rows: usize) -> Vec<u8> {
    let texts = [
        "I love this phone, the screen is great!",
        "Terrible battery, it died after an hour",
        "The box was brown",
        "not bad at all, but the price is too high",
        "AMAZING service :)",
    ];
    let mut d = b"id,review,stars\n".to_vec();
    for i in 0..rows {
        d.extend(format!("{i},\"{}\",{}\n", texts[i % texts.len()], i % 5).bytes());
        if i == 10 {
            d.extend(b"broken row\n");
        }
    }
    d
}

fn cfg() -> RunConfig {
    RunConfig {
        checkpoint_rows: 1000,
        checkpoint_every: Duration::from_secs(60),
        progress_every: Duration::from_millis(1),
    }
}

fn spec<'a>(job: &'a str, attempt: u32, cols: &'a [String]) -> JobSpec<'a> {
    JobSpec {
        job_id: job,
        attempt,
        dataset_id: "ds1",
        columns: cols,
    }
}

#[tokio::test]
async fn small_csv_gives_expected_labels_and_summaries() {
    for t in TestDb::all().await {
        let db = connect(&t).await;
        let dir = tempfile::tempdir().unwrap();
        add_dataset(&db, dir.path(), "ds1", &reviews(5)).await;
        let cols = vec!["review".to_string()];
        let out = job::run(
            &db,
            dir.path(),
            spec("j1", 1, &cols),
            cfg(),
            &CancellationToken::new(),
            |_, _, _| {},
        )
        .await
        .unwrap();
        assert_eq!(out["rows"], 5);
        let results = std::fs::read_to_string(job::results_path(dir.path(), "j1")).unwrap();
        assert_eq!(
            results,
            "row,review_compound,review_label\n\
             1,0.8622,positive\n\
             2,-0.7717,negative\n\
             3,0.0000,neutral\n\
             4,0.2323,positive\n\
             5,0.8192,positive\n"
        );
        let s = store::summaries(&db, "j1").await.unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].rows, s[0].positive, s[0].neutral, s[0].negative),
            (5, 3, 1, 1)
        );
        assert_eq!(s[0].mean_compound, 0.2284);
        let run = store::get_run(&db, "j1").await.unwrap().unwrap();
        assert_eq!(run.status, "completed");
        assert!(store::load_checkpoint(&db, "j1").await.unwrap().is_none());
        // What the estimate will rest on: the fixed part is part of the run's time, and
        // the reading loop alone went at least as fast as the whole run.
        let (elapsed, overhead) = (run.elapsed_ms.unwrap(), run.overhead_ms.unwrap());
        assert!((0..=elapsed).contains(&overhead), "{run:?}");
        let speeds = store::recent_speeds(&db, 5).await.unwrap();
        assert_eq!(speeds.len(), 1);
        assert!(
            speeds[0].reading_secs <= elapsed as f64 / 1000.0 + 1e-3,
            "{speeds:?} {run:?}"
        );
        // And the bytes it scored: the five reviews' texts, unquoted.
        let texts: usize = [
            "I love this phone, the screen is great!",
            "Terrible battery, it died after an hour",
            "The box was brown",
            "not bad at all, but the price is too high",
            "AMAZING service :)",
        ]
        .iter()
        .map(|t| t.len())
        .sum();
        assert_eq!(run.scored_cells, Some(5), "{run:?}");
        assert_eq!(run.scored_bytes, Some(texts as i64), "{run:?}");
        // Five rows are too few to time one in 32: no cost is recorded, and the
        // estimate falls back to one rate for every byte.
        assert_eq!(run.ns_per_cell, None, "{run:?}");
        assert_eq!(speeds[0].scored, None);
        // Nothing is left in tmp/.
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }
}

#[tokio::test]
async fn an_interrupted_run_resumes_from_its_checkpoint_with_identical_results() {
    for t in TestDb::all().await {
        let db = connect(&t).await;
        let dir = tempfile::tempdir().unwrap();
        add_dataset(&db, dir.path(), "ds1", &reviews(20_000)).await;
        let cols = vec!["review".to_string(), "id".to_string()];
        job::run(
            &db,
            dir.path(),
            spec("whole", 1, &cols),
            cfg(),
            &CancellationToken::new(),
            |_, _, _| {},
        )
        .await
        .unwrap();
        // Attempt 1 loses its lease after some checkpoints.
        let token = CancellationToken::new();
        let t2 = token.clone();
        let err = job::run(
            &db,
            dir.path(),
            spec("cut", 1, &cols),
            cfg(),
            &token,
            |_, _, d| {
                if d["rows"].as_u64().unwrap_or(0) > 5_000 {
                    t2.cancel();
                }
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(err, RunError::LeaseLost), "{err}");
        let (cp, _) = store::load_checkpoint(&db, "cut").await.unwrap().unwrap();
        assert!(cp.byte_offset > 0 && cp.rows >= 5_000, "{cp:?}");
        assert!(!job::results_path(dir.path(), "cut").exists());
        // Attempt 2 resumes.
        let out = job::run(
            &db,
            dir.path(),
            spec("cut", 2, &cols),
            cfg(),
            &CancellationToken::new(),
            |_, _, _| {},
        )
        .await
        .unwrap();
        assert_eq!(out["resumed_from"]["offset"], cp.byte_offset);
        let a = std::fs::read(job::results_path(dir.path(), "whole")).unwrap();
        let b = std::fs::read(job::results_path(dir.path(), "cut")).unwrap();
        assert!(a == b, "results differ");
        let strip = |v: Vec<drover_entities::analysis_summary::Model>| {
            let mut v: Vec<_> = v
                .into_iter()
                .map(|m| {
                    (
                        m.column_name,
                        m.rows,
                        m.positive,
                        m.neutral,
                        m.negative,
                        m.mean_compound.to_bits(),
                        m.histogram,
                    )
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            strip(store::summaries(&db, "whole").await.unwrap()),
            strip(store::summaries(&db, "cut").await.unwrap())
        );
        let run = store::get_run(&db, "cut").await.unwrap().unwrap();
        assert_eq!(run.resumed_from_offset, Some(cp.byte_offset));
        assert_eq!(run.malformed_rows, 1);
        // An older attempt that comes back cannot overwrite the newer checkpoint.
        let st = drover_analysis::runner::RunState::fresh(0, &cols);
        store::save_checkpoint(&db, "other", 3, "x", &st)
            .await
            .unwrap();
        assert!(
            !store::save_checkpoint(&db, "other", 2, "y", &st)
                .await
                .unwrap()
        );
    }
}

#[tokio::test]
async fn lost_lease_writes_nothing_and_unknown_dataset_is_permanent() {
    for t in TestDb::all().await {
        let db = connect(&t).await;
        let dir = tempfile::tempdir().unwrap();
        add_dataset(&db, dir.path(), "ds1", &reviews(100)).await;
        let cols = vec!["review".to_string()];
        let token = CancellationToken::new();
        token.cancel();
        let err = job::run(
            &db,
            dir.path(),
            spec("j", 1, &cols),
            cfg(),
            &token,
            |_, _, _| {},
        )
        .await
        .unwrap_err();
        assert!(matches!(err, RunError::LeaseLost));
        assert!(store::load_checkpoint(&db, "j").await.unwrap().is_none());
        assert!(!job::results_path(dir.path(), "j").exists());
        let bad = vec!["nope".to_string()];
        let err = job::run(
            &db,
            dir.path(),
            spec("k", 1, &bad),
            cfg(),
            &CancellationToken::new(),
            |_, _, _| {},
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, RunError::Permanent(m) if m.contains("nope")),
            "{err}"
        );
        let mut s = spec("k", 1, &cols);
        s.dataset_id = "gone";
        let err = job::run(
            &db,
            dir.path(),
            s,
            cfg(),
            &CancellationToken::new(),
            |_, _, _| {},
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, RunError::Permanent(m) if m.contains("gone")),
            "{err}"
        );
    }
}
