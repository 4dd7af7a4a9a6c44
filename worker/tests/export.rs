//! The export work, run without a queue against SQLite and PostgreSQL: the right rows
//! in each format and from each source, a file whose hash is recorded, nothing left
//! behind by an attempt that lost its lease.
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

mod common;

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use drover_entities::{aggregate, analysis_summary, export as exports, job_history};
use drover_jobs::kinds::{ExportFilters, ExportFormat, ExportPayload, ExportSource};
use drover_jobs::{QueueName, data_dir};
use drover_worker::export::{self, ExportError, ExportJob, ExportSettings, Progress, Row};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

fn settings(dir: &Path) -> ExportSettings {
    ExportSettings {
        data_dir: dir.to_owned(),
        ttl: Duration::from_secs(3600),
        // Small pages, so every export here crosses page boundaries.
        page_rows: 300,
    }
}

fn payload(source: ExportSource, format: ExportFormat, gzip: bool) -> ExportPayload {
    ExportPayload {
        source,
        filters: ExportFilters::default(),
        format,
        gzip,
    }
}

/// The file's bytes, decompressed when it is gzipped.
fn content(path: &Path, gzip: bool) -> Vec<u8> {
    let raw = std::fs::read(path).unwrap();
    if !gzip {
        return raw;
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn files_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

async fn run(
    db: &DatabaseConnection,
    dir: &Path,
    id: &str,
    attempt: u32,
    p: &ExportPayload,
) -> Result<exports::Model, ExportError> {
    export::run(
        db,
        &settings(dir),
        ExportJob {
            id,
            attempt,
            payload: p,
        },
        &(),
        &CancellationToken::new(),
    )
    .await
}

/// Checks the recorded file: it exists in exports/, its size and sha256 are recorded,
/// nothing is left in tmp/; returns its (decompressed) content.
fn check_file(dir: &Path, m: &exports::Model) -> Vec<u8> {
    let path = data_dir::exports_dir(dir).join(&m.file_name);
    let raw = std::fs::read(&path).unwrap();
    assert_eq!(raw.len() as i64, m.bytes);
    assert_eq!(hex::encode(Sha256::digest(&raw)), m.sha256);
    assert!(
        files_in(&data_dir::tmp_dir(dir)).is_empty(),
        "{:?}",
        files_in(&data_dir::tmp_dir(dir))
    );
    content(&path, m.gzip)
}

fn csv_rows(bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_reader(bytes);
    let header = r.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

fn json_rows(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The archived jobs with these filters, read straight from the table.
async fn history(
    db: &DatabaseConnection,
    queue: Option<&str>,
    state: Option<&str>,
) -> Vec<job_history::Model> {
    let mut q = job_history::Entity::find();
    if let Some(queue) = queue {
        q = q.filter(job_history::Column::Queue.eq(queue));
    }
    if let Some(state) = state {
        q = q.filter(job_history::Column::State.eq(state));
    }
    q.order_by_asc(job_history::Column::Id)
        .all(db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_history_exports_hold_the_rows_of_the_database_in_each_format() {
    for (_t, db) in common::databases().await {
        common::seed_history(&db, 1_000).await;
        let all = history(&db, None, None).await;
        for gzip in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            // CSV: every column, quoting intact (payloads hold newlines, quotes, commas).
            let p = payload(ExportSource::JobHistory, ExportFormat::Csv, gzip);
            let m = run(&db, dir.path(), "01KCSV", 1, &p).await.unwrap();
            assert_eq!(m.rows, 1_000);
            assert_eq!(
                m.file_name,
                format!("export-01KCSV-1.csv{}", if gzip { ".gz" } else { "" })
            );
            let (header, rows) = csv_rows(&check_file(dir.path(), &m));
            assert_eq!(header, <job_history::Model as Row>::HEADER);
            assert_eq!(rows.len(), all.len());
            for (row, db_row) in rows.iter().zip(&all) {
                assert_eq!(row[0], db_row.id);
                assert_eq!(row[1], db_row.queue);
                assert_eq!(row[2], db_row.state);
                assert_eq!(row[3], db_row.attempts.to_string());
                assert_eq!(row[6], db_row.request_id.clone().unwrap_or_default());
                assert_eq!(row[12], db_row.payload);
                assert_eq!(row[13], db_row.result.clone().unwrap_or_default());
                assert_eq!(row[14], db_row.errors);
                assert_eq!(
                    chrono::DateTime::parse_from_rfc3339(&row[10]).unwrap(),
                    db_row.finished_at.unwrap()
                );
            }
            // JSON lines, filtered: only failed export jobs; JSON columns as JSON.
            let mut p = payload(ExportSource::JobHistory, ExportFormat::Jsonl, gzip);
            p.filters.queue = Some(QueueName::Export);
            p.filters.state = Some("failed".to_owned());
            let m = run(&db, dir.path(), "01KJSONL", 1, &p).await.unwrap();
            let want = history(&db, Some("export"), Some("failed")).await;
            assert!(want.len() > 50, "the filter keeps {} rows", want.len());
            assert_eq!(m.rows as usize, want.len());
            let lines = json_rows(&check_file(dir.path(), &m));
            assert_eq!(lines.len(), want.len());
            for (line, db_row) in lines.iter().zip(&want) {
                assert_eq!(line["id"], db_row.id.as_str());
                assert_eq!(line["queue"], "export");
                assert_eq!(line["state"], "failed");
                let payload: Value = serde_json::from_str(&db_row.payload).unwrap();
                assert_eq!(line["payload"], payload);
                let errors: Value = serde_json::from_str(&db_row.errors).unwrap();
                assert_eq!(line["errors"], errors);
                assert_eq!(
                    line["result"],
                    db_row
                        .result
                        .as_deref()
                        .map_or(Value::Null, |r| serde_json::from_str(r).unwrap())
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_export_with_a_time_range_and_a_limit() {
    for (_t, db) in common::databases().await {
        common::seed_aggregates(&db, 700).await;
        let dir = tempfile::tempdir().unwrap();
        let from = common::t0() + chrono::Duration::hours(100);
        let to = common::t0() + chrono::Duration::hours(600);
        let mut p = payload(ExportSource::Aggregates, ExportFormat::Csv, false);
        p.filters.from = Some(from);
        p.filters.to = Some(to);
        p.filters.queue = Some(QueueName::Export);
        let m = run(&db, dir.path(), "01KAGG", 1, &p).await.unwrap();
        let want = aggregate::Entity::find()
            .filter(aggregate::Column::BucketStart.gte(from))
            .filter(aggregate::Column::BucketStart.lt(to))
            .filter(aggregate::Column::Subject.eq("export"))
            .order_by_asc(aggregate::Column::Id)
            .all(&db)
            .await
            .unwrap();
        assert_eq!(want.len(), 250);
        let (header, rows) = csv_rows(&check_file(dir.path(), &m));
        assert_eq!(header, <aggregate::Model as Row>::HEADER);
        assert_eq!(rows.len(), want.len());
        for (row, a) in rows.iter().zip(&want) {
            assert_eq!(row[0], a.id.to_string());
            assert_eq!(row[4], "export");
            assert_eq!(row[6].parse::<f64>().unwrap(), a.value);
            assert_eq!(
                chrono::DateTime::parse_from_rfc3339(&row[1]).unwrap(),
                a.bucket_start
            );
        }
        // A limit cuts the export short, mid-page.
        p.filters.limit = Some(123);
        p.format = ExportFormat::Jsonl;
        let m = run(&db, dir.path(), "01KLIMIT", 1, &p).await.unwrap();
        let lines = json_rows(&check_file(dir.path(), &m));
        assert_eq!(m.rows, 123);
        assert_eq!(lines.len(), 123);
        assert_eq!(lines[122]["id"], want[122].id);
        // An empty export is still a file, with its header.
        p.filters.from = Some(common::t0() + chrono::Duration::days(3650));
        p.filters.to = Some(common::t0() + chrono::Duration::days(3651));
        p.filters.limit = None;
        p.format = ExportFormat::Csv;
        let m = run(&db, dir.path(), "01KEMPTY", 1, &p).await.unwrap();
        assert_eq!(m.rows, 0);
        let (header, rows) = csv_rows(&check_file(dir.path(), &m));
        assert_eq!(header.len(), 8);
        assert!(rows.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_is_upserted_and_an_earlier_attempt_leaves_nothing() {
    for (_t, db) in common::databases().await {
        common::seed_history(&db, 100).await;
        let dir = tempfile::tempdir().unwrap();
        let p = payload(ExportSource::JobHistory, ExportFormat::Jsonl, true);
        let first = run(&db, dir.path(), "01KRETRY", 1, &p).await.unwrap();
        // Attempt 1 finished but its outcome was lost; attempt 3's predecessor was killed
        // mid-write and left its temporary file.
        let tmp = data_dir::tmp_dir(dir.path());
        std::fs::write(tmp.join(data_dir::export_part_name("01KRETRY", 2)), b"half").unwrap();
        std::fs::write(
            tmp.join(data_dir::export_part_name("01KOTHER", 1)),
            b"other",
        )
        .unwrap();
        let third = run(&db, dir.path(), "01KRETRY", 3, &p).await.unwrap();
        assert_eq!(third.file_name, "export-01KRETRY-3.jsonl.gz");
        assert_eq!(third.rows, first.rows);
        let rows = exports::Entity::find().all(&db).await.unwrap();
        assert_eq!(rows.len(), 1, "one row per export job");
        assert_eq!(rows[0].file_name, third.file_name);
        assert_eq!(rows[0].attempt, 3);
        assert_eq!(
            files_in(&data_dir::exports_dir(dir.path())),
            vec![third.file_name.clone()],
            "the first attempt's file is gone"
        );
        // Another job's temporary file is not ours to delete.
        assert_eq!(files_in(&tmp), [data_dir::export_part_name("01KOTHER", 1)]);
        assert!(rows[0].expires_at > rows[0].created_at);
    }
}

/// Cancels the lease after `after` pages.
struct LoseLeaseAfter {
    token: CancellationToken,
    pages: std::sync::atomic::AtomicU32,
    after: u32,
}

impl Progress for LoseLeaseAfter {
    fn rows(&self, _: u64, _: u64, _: f64) {
        let n = self.pages.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if n >= self.after {
            self.token.cancel();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_that_loses_its_lease_stops_and_leaves_no_file() {
    for (_t, db) in common::databases().await {
        common::seed_history(&db, 1_000).await;
        let dir = tempfile::tempdir().unwrap();
        let p = payload(ExportSource::JobHistory, ExportFormat::Csv, false);
        for after in [1, 3] {
            let probe = LoseLeaseAfter {
                token: CancellationToken::new(),
                pages: 0.into(),
                after,
            };
            let err = export::run(
                &db,
                &settings(dir.path()),
                ExportJob {
                    id: "01KLOST",
                    attempt: after,
                    payload: &p,
                },
                &probe,
                &probe.token,
            )
            .await
            .unwrap_err();
            assert!(matches!(err, ExportError::LeaseLost), "{err}");
            assert_eq!(
                probe.pages.load(std::sync::atomic::Ordering::SeqCst),
                after,
                "stopped at the first page boundary after the loss"
            );
            assert!(files_in(&data_dir::exports_dir(dir.path())).is_empty());
            assert!(files_in(&data_dir::tmp_dir(dir.path())).is_empty());
        }
        // Lost before the start: nothing is written at all.
        let lost = CancellationToken::new();
        lost.cancel();
        let err = export::run(
            &db,
            &settings(dir.path()),
            ExportJob {
                id: "01KLOST",
                attempt: 9,
                payload: &p,
            },
            &(),
            &lost,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ExportError::LeaseLost));
        assert!(files_in(&data_dir::exports_dir(dir.path())).is_empty());
        assert!(exports::Entity::find().all(&db).await.unwrap().is_empty());
    }
}

/// Summaries of three analyses, two or three columns each, written straight to the table.
async fn seed_summaries(db: &DatabaseConnection) -> Vec<analysis_summary::Model> {
    use sea_orm::ActiveValue::Set;
    let t0 = chrono::Utc::now() - chrono::Duration::hours(3);
    let mut all = Vec::new();
    for (j, job) in ["01KJOBA", "01KJOBB", "01KJOBC"].iter().enumerate() {
        // Column names that sort differently from their insertion order, and one
        // that CSV must quote.
        let cols: &[&str] = if j == 1 {
            &["zeta", "alpha", "has,comma"]
        } else {
            &["review", "title"]
        };
        for (k, col) in cols.iter().enumerate() {
            let n = (j * 10 + k) as i64;
            let m = analysis_summary::ActiveModel {
                job_id: Set((*job).to_owned()),
                column_name: Set((*col).to_owned()),
                rows: Set(1000 + n),
                positive: Set(500 + n),
                neutral: Set(200),
                negative: Set(300),
                mean_compound: Set(0.125 + n as f64 / 100.0),
                histogram: Set(serde_json::to_string(&vec![n; 20]).unwrap()),
                created_at: Set(t0 + chrono::Duration::hours(j as i64)),
            };
            all.push(
                analysis_summary::Entity::insert(m)
                    .exec_with_returning(db)
                    .await
                    .unwrap(),
            );
        }
    }
    all.sort_by(|a, b| (&a.job_id, &a.column_name).cmp(&(&b.job_id, &b.column_name)));
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_results_exports_hold_the_summaries_of_the_database() {
    for (_t, db) in common::databases().await {
        let dir = tempfile::tempdir().unwrap();
        let all = seed_summaries(&db).await;
        assert_eq!(all.len(), 7);

        // CSV, everything, across pages of 2 rows (composite keyset over job and column).
        let mut p = payload(ExportSource::AnalysisResults, ExportFormat::Csv, false);
        let s = ExportSettings {
            page_rows: 2,
            ..settings(dir.path())
        };
        let m = export::run(
            &db,
            &s,
            ExportJob {
                id: "01KEXPA",
                attempt: 1,
                payload: &p,
            },
            &(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(m.rows, 7);
        let (header, rows) = csv_rows(&check_file(dir.path(), &m));
        assert_eq!(header, <analysis_summary::Model as Row>::HEADER);
        assert_eq!(header[1], "column");
        let expected: Vec<Vec<String>> = all.iter().map(Row::csv_record).collect();
        assert_eq!(rows, expected);
        assert_eq!(rows[0][..2], ["01KJOBA".to_owned(), "review".to_owned()]);
        assert_eq!(rows[2][..2], ["01KJOBB".to_owned(), "alpha".to_owned()]);
        assert_eq!(rows[3][1], "has,comma");

        // JSON lines, one analysis job, gzipped: its columns only, from the table.
        p.format = ExportFormat::Jsonl;
        p.gzip = true;
        p.filters.job_id = Some("01KJOBB".to_owned());
        let m = run(&db, dir.path(), "01KEXPB", 1, &p).await.unwrap();
        let lines = json_rows(&check_file(dir.path(), &m));
        let want: Vec<&analysis_summary::Model> =
            all.iter().filter(|s| s.job_id == "01KJOBB").collect();
        assert_eq!(lines.len(), 3);
        for (line, s) in lines.iter().zip(&want) {
            assert_eq!(line["job_id"], "01KJOBB");
            assert_eq!(line["column"], s.column_name.as_str());
            assert_eq!(line["rows"], s.rows);
            assert_eq!(line["positive"], s.positive);
            assert_eq!(line["mean_compound"], s.mean_compound);
            assert_eq!(
                line["histogram"],
                serde_json::from_str::<Value>(&s.histogram).unwrap()
            );
        }

        // A time range: only the summaries made at or after the second analysis.
        let mut p = payload(ExportSource::AnalysisResults, ExportFormat::Csv, false);
        p.filters.from = Some(
            all.iter()
                .find(|s| s.job_id == "01KJOBB")
                .unwrap()
                .created_at,
        );
        let m = run(&db, dir.path(), "01KEXPC", 1, &p).await.unwrap();
        let (_, rows) = csv_rows(&check_file(dir.path(), &m));
        assert_eq!(rows.len(), 5);
        assert!(rows.iter().all(|r| r[0] != "01KJOBA"));
    }
}
