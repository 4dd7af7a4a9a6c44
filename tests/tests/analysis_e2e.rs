//! Analysis end to end, on the real `drover-api` and `drover-worker` processes, on
//! SQLite and PostgreSQL: a 1,000,000-row upload; an uninterrupted analysis; a second
//! analysis whose worker is killed with SIGKILL after a checkpoint, resumed by another
//! worker from that checkpoint, with a results file and summaries byte-identical to the
//! first; and the refusals around it (unknown dataset or column, deleting a dataset
//! under analysis, an upload over the limit, an upload cut by its client, a multipart
//! body without a file).
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use drover_entities::analysis_checkpoint;
use drover_queue::{Queue, QueueDefaults, Redis, RedisConfig};
use drover_tests::procs::Proc;
use drover_tests::{TestDb, TestRedis, eventually_async, free_addr, namespace};
use sea_orm::EntityTrait;
use serde_json::{Value, json};

const KEY: &str = "e2e-analysis-admin-key-0123456789";
const ROWS: u64 = 1_000_000;
/// The row (1-based, among data rows) written with a missing field.
const MALFORMED_ROW: u64 = 123_457;
/// The API's upload limit: above the dataset, below the oversized upload.
const MAX_BYTES: u64 = 64 * 1024 * 1024;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// `ROWS` data rows of `id,text,stars`, plus one malformed row.
fn write_csv(path: &Path) -> u64 {
    let texts = [
        "I love it!",
        "\"bad, very bad\"",
        "meh",
        "not good at all",
        "The staff were VERY friendly :)",
        "Terrible... would not recommend",
        "\"It was okay, but the room was dirty\"",
        "Absolutely wonderful stay!!",
    ];
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    w.write_all(b"id,text,stars\n").unwrap();
    for i in 0..ROWS {
        if i + 1 == MALFORMED_ROW {
            w.write_all(b"only-one-field\n").unwrap();
        }
        writeln!(w, "{i},{},{}", texts[(i * 7 % 8) as usize], i % 5 + 1).unwrap();
    }
    w.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

async fn upload(base: &str, path: &Path) -> Value {
    let body = tokio::fs::read(path).await.unwrap();
    let r = client()
        .post(format!("{base}/api/v1/datasets?name=reviews.csv"))
        .bearer_auth(KEY)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn submit(base: &str, dataset: &str, columns: &[&str]) -> reqwest::Response {
    client()
        .post(format!("{base}/api/v1/queues/analysis/jobs"))
        .bearer_auth(KEY)
        .json(&json!({"payload": {"dataset_id": dataset, "columns": columns, "chain_type": "sentiment"}}))
        .send()
        .await
        .unwrap()
}

/// `POST /api/v1/analysis/estimate` of one column: the answer, which must be a 200.
async fn estimate(base: &str, dataset: &str, column: &str) -> Value {
    let r = client()
        .post(format!("{base}/api/v1/analysis/estimate"))
        .bearer_auth(KEY)
        .json(&json!({"dataset_id": dataset, "columns": [column]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "estimate of {column}");
    r.json().await.unwrap()
}

async fn analysis(base: &str, id: &str) -> Option<Value> {
    let r = client()
        .get(format!("{base}/api/v1/analysis/{id}"))
        .bearer_auth(KEY)
        .send()
        .await
        .ok()?;
    (r.status() == 200).then_some(())?;
    r.json().await.ok()
}

async fn completed(base: &str, id: &str) -> Value {
    eventually_async(
        Duration::from_secs(300),
        "the analysis to complete",
        || async {
            let v = analysis(base, id).await?;
            assert_ne!(v["status"], "failed", "{v}");
            (v["status"] == "completed").then_some(v)
        },
    )
    .await
}

async fn results(base: &str, id: &str) -> Vec<u8> {
    let r = client()
        .get(format!("{base}/api/v1/analysis/{id}/results"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let len: u64 = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = r.bytes().await.unwrap().to_vec();
    assert_eq!(bytes.len() as u64, len);
    bytes
}

fn files_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Jobs the analysis queue has ever held (every state).
async fn analysis_jobs(q: &Queue) -> u64 {
    let c = q.overview().await.unwrap().counts;
    c.waiting + c.delayed + c.active + c.completed + c.failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_analysis_resumes_from_its_checkpoint_and_writes_the_same_bytes() {
    let redis = TestRedis::start();
    let files = tempfile::tempdir().unwrap();
    let csv = files.path().join("reviews.csv");
    let size = write_csv(&csv);
    assert!(size < MAX_BYTES);
    for db in TestDb::all().await {
        let engine = db.engine();
        let data = tempfile::tempdir().unwrap();
        let ns = namespace();
        let addr = free_addr();
        let base = format!("http://{addr}");
        let env = vec![
            ("REDIS_URL", redis.url()),
            ("DATABASE_URL", db.url().to_owned()),
            ("DROVER_DATA_DIR", data.path().display().to_string()),
            ("DROVER_REDIS_NAMESPACE", ns.clone()),
            ("DROVER_API_KEYS", format!("admin:{KEY}")),
            ("DROVER_API_ADDR", addr.to_string()),
            ("DROVER_WORKER_QUEUES", "analysis".to_owned()),
            ("DROVER_WORKER_METRICS_ADDR", "off".to_owned()),
            ("DROVER_DATASET_MAX_BYTES", MAX_BYTES.to_string()),
            // Checkpoints often, and a killed worker's job back soon.
            ("DROVER_ANALYSIS_CHECKPOINT_ROWS", "25000".to_owned()),
            ("DROVER_LEASE_MS", "2000".to_owned()),
            ("DROVER_RESCUE_INTERVAL_MS", "200".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ];
        let mut api = Proc::start("drover-api", &env);
        eventually_async(Duration::from_secs(60), "the API to be ready", || async {
            let r = client().get(format!("{base}/ready")).send().await.ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
        let q = Queue::new(
            Redis::new(RedisConfig::new(redis.url())).unwrap(),
            &ns,
            "analysis",
            QueueDefaults::default(),
        )
        .unwrap();
        let dbc = drover_jobs::connect::database(db.url()).await.unwrap();

        // The upload: every row counted, the malformed one too.
        let ds = upload(&base, &csv).await;
        let ds_id = ds["id"].as_str().unwrap().to_owned();
        assert_eq!(ds["rows"], ROWS + 1, "{engine:?} {ds}");
        assert_eq!(ds["malformed_rows"], 1);
        assert_eq!(ds["bytes"], size);

        // Refusals before anything is enqueued, naming the field: an unknown dataset is
        // a 404, a column the dataset lacks a 422 (the request fits the schema).
        for (dataset, columns, field, status) in [
            (
                "01KNOSUCHDATASET000000000",
                vec!["text"],
                "payload.dataset_id",
                404,
            ),
            (
                ds_id.as_str(),
                vec!["text", "nope"],
                "payload.columns[1]",
                422,
            ),
        ] {
            let r = submit(&base, dataset, &columns).await;
            assert_eq!(r.status(), status, "{engine:?}");
            let body: Value = r.json().await.unwrap();
            if status == 404 {
                // The message names what is missing and what to do.
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert!(message.contains(dataset), "{body}");
            } else {
                assert_eq!(body["error"]["details"]["field"], field, "{body}");
            }
        }
        assert_eq!(
            analysis_jobs(&q).await,
            0,
            "{engine:?}: a refused analysis was enqueued"
        );

        // The upload limit: 413, and no file left, with or without a Content-Length.
        let before = files_in(&data.path().join("datasets"));
        let big = vec![b'x'; (MAX_BYTES + 1024 * 1024) as usize];
        let r = client()
            .post(format!("{base}/api/v1/datasets?name=big.csv"))
            .bearer_auth(KEY)
            .header("content-type", "text/csv")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{engine:?}");
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = std::iter::once(b"a,b\n".to_vec())
            .chain(big.chunks(1 << 20).map(<[u8]>::to_vec))
            .map(Ok)
            .collect();
        let r = client()
            .post(format!("{base}/api/v1/datasets?name=big.csv"))
            .bearer_auth(KEY)
            .header("content-type", "text/csv")
            .body(reqwest::Body::wrap_stream(futures_iter(chunks)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{engine:?}");
        assert_eq!(files_in(&data.path().join("datasets")), before);
        assert!(files_in(&data.path().join("tmp")).is_empty(), "{engine:?}");

        // A client that goes away mid-body: the part file it started is removed and
        // no dataset is recorded.
        {
            use tokio::io::AsyncWriteExt as _;
            let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
            let head = format!(
                "POST /api/v1/datasets?name=cut.csv HTTP/1.1\r\nhost: {addr}\r\n\
                 authorization: Bearer {KEY}\r\ncontent-type: text/csv\r\n\
                 content-length: {}\r\n\r\na,b\n",
                MAX_BYTES / 2
            );
            conn.write_all(head.as_bytes()).await.unwrap();
            conn.write_all(&vec![b'x'; 4 << 20]).await.unwrap();
            conn.flush().await.unwrap();
            eventually_async(
                Duration::from_secs(30),
                "the cut upload's part file",
                || async { (!files_in(&data.path().join("tmp")).is_empty()).then_some(()) },
            )
            .await;
            drop(conn);
            eventually_async(Duration::from_secs(30), "the part file removed", || async {
                files_in(&data.path().join("tmp")).is_empty().then_some(())
            })
            .await;
            assert_eq!(files_in(&data.path().join("datasets")), before);
        }

        // Multipart without a file: 4xx, nothing stored.
        let mp =
            "--XyZ\r\ncontent-disposition: form-data; name=\"name\"\r\n\r\nreviews\r\n--XyZ--\r\n";
        let r = client()
            .post(format!("{base}/api/v1/datasets"))
            .bearer_auth(KEY)
            .header("content-type", "multipart/form-data; boundary=XyZ")
            .body(mp)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{engine:?}: {}", r.status());
        let body: Value = r.json().await.unwrap();
        assert!(body["error"]["message"].is_string(), "{body}");
        assert_eq!(files_in(&data.path().join("datasets")), before);

        // Run A, uninterrupted.
        let mut worker = Proc::start("drover-worker", &env);
        let r = submit(&base, &ds_id, &["text"]).await;
        assert_eq!(r.status(), 201);
        let a = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let va = completed(&base, &a).await;
        assert_eq!(va["rows"], ROWS + 1, "{engine:?} {va}");
        assert_eq!(va["malformed_rows"], 1);
        assert_eq!(va["malformed_examples"][0]["row"], MALFORMED_ROW, "{va}");
        assert!(va["resumed_from"].is_null(), "{va}");
        let ra = results(&base, &a).await;
        // The estimate now rests on run A: its fixed part plus its reading rate give
        // back run A's own time for the same file.
        let est = estimate(&base, &ds_id, "text").await;
        assert_eq!(est["basis"], "measured", "{est}");
        let elapsed = va["elapsed_ms"].as_f64().unwrap() / 1000.0;
        let fixed = est["fixed_seconds"].as_f64().unwrap();
        assert!((0.0..elapsed).contains(&fixed), "{est} {va}");
        let secs = est["seconds"].as_f64().unwrap();
        assert!(
            (secs - elapsed).abs() <= 0.02 + elapsed * 0.01,
            "{est} {va}"
        );
        let scoring = est["scoring_seconds"].as_f64().unwrap();
        let scored = est["scored_bytes"].as_f64().unwrap();
        let by_parts = fixed + size as f64 / est["bytes_per_sec"].as_f64().unwrap() + scoring;
        assert!((secs - by_parts).abs() <= 0.02, "{est}");
        // Run A timed one row in 32 and fitted what a cell costs; the one-digit `stars`
        // column then holds less to score than `text`, and its estimate is lower (one
        // rate for every byte of the file would make them equal).
        assert!(scoring > 0.0, "{est}");
        let stars = estimate(&base, &ds_id, "stars").await;
        assert_eq!(stars["scored_bytes"], ROWS, "{stars}");
        assert!(
            scored > 10.0 * ROWS as f64,
            "the texts average over 10 bytes: {est}"
        );
        // As many cells, but one byte each instead of about twenty: less to score,
        // and less in all.
        assert!(
            stars["scoring_seconds"].as_f64().unwrap() < scoring,
            "{stars} against {est}"
        );
        assert!(
            stars["seconds"].as_f64().unwrap() < secs,
            "{stars} against {est}"
        );

        // Run B: killed after a checkpoint, while it reads on.
        let r = submit(&base, &ds_id, &["text"]).await;
        assert_eq!(r.status(), 201);
        let b = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let cp = eventually_async(
            Duration::from_secs(120),
            "a checkpoint of run B",
            || async {
                let cp = analysis_checkpoint::Entity::find_by_id(b.clone())
                    .one(&dbc)
                    .await
                    .ok()??;
                (cp.byte_offset > 0).then_some(cp)
            },
        )
        .await;
        worker.kill9();
        assert!(cp.rows > 0 && (cp.rows as u64) < ROWS, "{cp:?}");
        // The dataset is under analysis (its job active, then waiting): 409.
        let r = client()
            .delete(format!("{base}/api/v1/datasets/{ds_id}"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 409, "{engine:?}");
        assert!(
            data.path()
                .join("datasets")
                .read_dir()
                .unwrap()
                .next()
                .is_some()
        );

        // Another worker rescues the job and resumes from the checkpoint.
        let metrics_addr = free_addr().to_string();
        let mut env_b = env.clone();
        env_b.retain(|(k, _)| *k != "DROVER_WORKER_METRICS_ADDR");
        env_b.push(("DROVER_WORKER_METRICS_ADDR", metrics_addr.clone()));
        let mut worker = Proc::start("drover-worker", &env_b);
        let vb = completed(&base, &b).await;
        let from = vb["resumed_from"]["offset"].as_u64().unwrap_or(0);
        assert!(from > 0, "{engine:?}: not resumed: {vb}");
        assert!(from >= cp.byte_offset as u64, "{vb} {cp:?}");
        // Its throughput counters count what it read, from the checkpoint to the end.
        let from_rows = vb["resumed_from"]["rows"].as_u64().unwrap();
        let scraped =
            drover_tests::scrape::text(&client(), &format!("http://{metrics_addr}/metrics")).await;
        assert_eq!(
            counter(&scraped, "drover_analysis_rows_total"),
            (ROWS + 1 - from_rows) as f64,
            "{engine:?}"
        );
        assert_eq!(
            counter(&scraped, "drover_analysis_bytes_total"),
            (size - from) as f64,
            "{engine:?}"
        );
        assert!(vb["attempt"].as_i64().unwrap() >= 2, "{vb}");
        let rb = results(&base, &b).await;
        assert!(ra == rb, "{engine:?}: the resumed run's results differ");
        assert_eq!(va["summaries"], vb["summaries"], "{engine:?}");
        assert_eq!(va["rows"], vb["rows"]);
        assert_eq!(va["malformed_examples"], vb["malformed_examples"]);
        assert_eq!(
            std::str::from_utf8(&ra).unwrap().lines().count() as u64,
            ROWS + 1,
            "a header and one line per well-formed row"
        );

        // Nothing under analysis any more: the dataset can go.
        let r = client()
            .delete(format!("{base}/api/v1/datasets/{ds_id}"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{engine:?}");
        worker.terminate(Duration::from_secs(30));
        api.terminate(Duration::from_secs(30));
    }
}

/// The value of an unlabelled series in a scrape; panics if it is missing.
fn counter(scrape: &str, name: &str) -> f64 {
    drover_tests::scrape::unlabelled(scrape, name)
        .unwrap_or_else(|| panic!("no {name} in the scrape:\n{scrape}"))
}

fn futures_iter(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::iter(chunks)
}
