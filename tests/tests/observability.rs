//! Jobs run through the real API, worker and scheduler processes, and each process's
//! `/metrics` is scraped: every series the operators' issue lists is there, with values
//! that match what ran (completions, failures and retries counted once each), the
//! per-queue series exist at zero before the first event, and every metric name that
//! `ops/monitoring/alerts.yml` and the Grafana dashboard use is one that a real scrape
//! exports.
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use drover_entities::dataset;
use drover_tests::procs::Proc;
use drover_tests::{TestDb, TestRedis, eventually_async, free_addr, namespace};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(90);
const KEY: &str = "observability-admin-key-0123456789";

/// One sample of a scrape: name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format (what our exporter writes: no escaped quotes or
/// commas inside label values).
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (head, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => {
                let body = rest.strip_suffix('}').unwrap();
                let labels = body
                    .split(',')
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap();
                        (k.to_owned(), v.trim_matches('"').to_owned())
                    })
                    .collect();
                (n.to_owned(), labels)
            }
            None => (head.to_owned(), BTreeMap::new()),
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap(),
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// The sum of series `name` whose labels include all of `labels`; `None` if there is none.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

async fn scrape(addr: &str) -> Option<Vec<Sample>> {
    let r = reqwest::get(format!("http://{addr}/metrics")).await.ok()?;
    if r.status() != 200 {
        return None;
    }
    Some(parse(&r.text().await.ok()?))
}

async fn ready(addr: &str) -> Option<()> {
    let r = reqwest::get(format!("http://{addr}/ready")).await.ok()?;
    (r.status() == 200).then_some(())
}

/// `(year, month, day)` of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap();
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap();
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// A 6-field cron expression that matches exactly one second: `ahead` seconds from now.
fn once_in(ahead: u64) -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + ahead;
    let t = i64::try_from(t).unwrap();
    let (_, month, day) = civil(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    // Cron has no year field: one second a year is once for the test.
    format!("{} {} {} {day} {month} *", s % 60, (s / 60) % 60, s / 3600)
}

/// Every metric name in a PromQL expression: identifiers that are not functions,
/// keywords, label names or durations.
fn promql_names(expr: &str) -> BTreeSet<String> {
    const WORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
    ];
    let mut names = BTreeSet::new();
    let b = expr.as_bytes();
    let mut i = 0;
    let mut in_braces = 0;
    let mut in_string = false;
    while i < b.len() {
        let c = b[i] as char;
        if in_string {
            if c == '\\' {
                i += 1;
            } else if c == '"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => in_braces += 1,
            '}' => in_braces -= 1,
            '[' => {
                // A range or subquery duration: skip it.
                while i < b.len() && b[i] != b']' {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // A number (`0.95`, `1e-9`): not a name.
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'.'
                        || ((b[i] == b'-' || b[i] == b'+') && matches!(b[i - 1], b'e' | b'E')))
                {
                    i += 1;
                }
                continue;
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let word = &expr[start..i];
                let rest = expr[i..].trim_start();
                // A call, or an aggregation with its grouping first (`sum by (q) (…)`).
                let is_call = rest.starts_with('(')
                    || ["by", "without"].iter().any(|k| {
                        rest.strip_prefix(k)
                            .is_some_and(|r| r.trim_start().starts_with('('))
                    });
                // `by (queue)` lists label names, not metrics.
                let prev = expr[..start].trim_end();
                let in_grouping = prev.ends_with('(') && {
                    let before = prev[..prev.len() - 1].trim_end();
                    [
                        "by",
                        "without",
                        "on",
                        "ignoring",
                        "group_left",
                        "group_right",
                    ]
                    .iter()
                    .any(|w| before.ends_with(w))
                } || (prev.ends_with(',') && grouping_open(&expr[..start]));
                if in_braces == 0
                    && !is_call
                    && !in_grouping
                    && !WORDS.contains(&word.to_ascii_lowercase().as_str())
                {
                    names.insert(word.to_owned());
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    names
}

/// Whether the innermost open parenthesis before the end of `before` follows a
/// grouping keyword (`by (a, b`).
fn grouping_open(before: &str) -> bool {
    let mut depth = 0;
    for (i, c) in before.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' if depth == 0 => {
                let kw = before[..i].trim_end();
                return [
                    "by",
                    "without",
                    "on",
                    "ignoring",
                    "group_left",
                    "group_right",
                ]
                .iter()
                .any(|w| kw.ends_with(w));
            }
            '(' => depth -= 1,
            _ => {}
        }
    }
    false
}

/// The `expr` values of a Prometheus rules file (inline, or a folded/literal block).
fn alert_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut exprs = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if let Some(v) = trimmed.strip_prefix("expr:") {
            let v = v.trim();
            if v.starts_with('>') || v.starts_with('|') {
                let indent = line.len() - trimmed.len();
                let mut body = String::new();
                i += 1;
                while i < lines.len() {
                    let l = lines[i];
                    let ind = l.len() - l.trim_start().len();
                    if !l.trim().is_empty() && ind <= indent {
                        break;
                    }
                    body.push_str(l.trim());
                    body.push(' ');
                    i += 1;
                }
                exprs.push(body);
                continue;
            }
            exprs.push(v.trim_matches(|c| c == '\'' || c == '"').to_owned());
        }
        i += 1;
    }
    exprs
}

/// Every query string of a Grafana dashboard: targets' `expr`, and templating's `query`
/// and `definition` (`label_values(metric, label)`).
fn dashboard_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        // A datasource variable's `query` is the datasource type, not PromQL.
        Value::Object(m) if m.get("type").and_then(Value::as_str) == Some("datasource") => {}
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                    ("query", Value::String(s)) => out.push(s.clone()),
                    ("query", Value::Object(q)) => {
                        if let Some(Value::String(s)) = q.get("query") {
                            out.push(s.clone());
                        }
                    }
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

/// `label_values(metric, label)` names `metric`; anything else is PromQL.
fn query_names(q: &str) -> BTreeSet<String> {
    if let Some(inner) = q.trim().strip_prefix("label_values(") {
        let metric = inner.split(',').next().unwrap_or("").trim();
        return promql_names(metric);
    }
    promql_names(q)
}

#[test]
fn the_promql_parser_finds_metric_names_and_skips_the_rest() {
    let names = promql_names(
        r#"sum by (queue, state) (rate(drover_jobs_failed_total{queue=~"a|b"}[5m])) / clamp_min(sum(rate(drover_jobs_completed_total[5m])), 1e-9) > 0.05 and on (queue) drover_workers == 0"#,
    );
    let want: BTreeSet<String> = [
        "drover_jobs_failed_total",
        "drover_jobs_completed_total",
        "drover_workers",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(names, want);
    assert_eq!(
        query_names("label_values(drover_queue_jobs, queue)"),
        BTreeSet::from(["drover_queue_jobs".to_owned()])
    );
}

fn workspace_file(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

async fn insert_dataset(db: &sea_orm::DatabaseConnection, id: &str, file_name: &str) {
    dataset::ActiveModel {
        id: Set(id.to_owned()),
        name: Set(format!("{id}.csv")),
        file_name: Set(file_name.to_owned()),
        bytes: Set(100),
        header: Set(r#"["text"]"#.to_owned()),
        rows: Set(3),
        malformed_rows: Set(0),
        chunk_offsets: Set("[5]".to_owned()),
        profile: Set("{}".to_owned()),
        sha256: Set("0".repeat(64)),
        created_at: Set(sea_orm::prelude::DateTimeUtc::from(SystemTime::now())),
    }
    .insert(db)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_series_is_scraped_with_the_values_of_what_ran() {
    let redis = TestRedis::start();
    let db = TestDb::sqlite();
    let data = tempfile::tempdir().unwrap();
    let ns = namespace();
    let (api_addr, worker_addr, sched_addr) = (
        free_addr().to_string(),
        free_addr().to_string(),
        free_addr().to_string(),
    );
    let common = vec![
        ("REDIS_URL", redis.url()),
        ("DATABASE_URL", db.url().to_owned()),
        ("DROVER_DATA_DIR", data.path().display().to_string()),
        ("DROVER_REDIS_NAMESPACE", ns.clone()),
        ("DROVER_API_KEYS", format!("admin:{KEY}")),
        ("RUST_LOG", "warn".to_owned()),
    ];
    let with = |extra: &[(&'static str, String)]| {
        let mut v = common.clone();
        v.extend_from_slice(extra);
        v
    };
    let _api = Proc::start(
        "drover-api",
        &with(&[("DROVER_API_ADDR", api_addr.clone())]),
    );
    eventually_async(T, "the API to be ready", || ready(&api_addr)).await;
    // The API migrated the database; the worker and scheduler find it so.
    let _worker = Proc::start(
        "drover-worker",
        &with(&[("DROVER_WORKER_METRICS_ADDR", worker_addr.clone())]),
    );
    let _scheduler = Proc::start(
        "drover-scheduler",
        &with(&[
            ("DROVER_SCHEDULER_METRICS_ADDR", sched_addr.clone()),
            ("DROVER_SCHEDULER_TICK_MS", "100".to_owned()),
            ("DROVER_SCHEDULER_LOCK_TTL_MS", "1000".to_owned()),
            ("DROVER_SCHEDULER_RELOAD_MS", "200".to_owned()),
        ]),
    );
    eventually_async(T, "the worker to be ready", || ready(&worker_addr)).await;
    eventually_async(T, "the scheduler to be ready", || ready(&sched_addr)).await;

    // Before any job: the per-queue series are there, at zero.
    let w0 = scrape(&worker_addr).await.unwrap();
    for queue in ["export", "analysis", "aggregation", "cleanup"] {
        let q = [("queue", queue)];
        for name in [
            "drover_jobs_completed_total",
            "drover_jobs_failed_total",
            "drover_jobs_retried_total",
            "drover_jobs_rescued_total",
            "drover_archive_rows_total",
            "drover_job_wait_seconds_count",
            "drover_job_run_seconds_count",
        ] {
            assert_eq!(
                value(&w0, name, &q),
                Some(0.0),
                "{name}{{queue={queue}}} at start"
            );
        }
        assert_eq!(
            value(
                &w0,
                "drover_job_run_seconds_bucket",
                &[("queue", queue), ("le", "3600")]
            ),
            Some(0.0),
            "the run-time buckets reach 1 h"
        );
        assert_eq!(
            value(
                &w0,
                "drover_job_wait_seconds_bucket",
                &[("queue", queue), ("le", "0.001")]
            ),
            Some(0.0),
            "the wait-time buckets start at 1 ms"
        );
    }
    let a0 = scrape(&api_addr).await.unwrap();
    for queue in ["export", "analysis", "aggregation", "cleanup"] {
        assert_eq!(
            value(&a0, "drover_jobs_enqueued_total", &[("queue", queue)]),
            Some(0.0)
        );
    }

    // Two datasets the analysis fails on: one whose file is gone (a permanent failure,
    // one attempt), one whose "file" is a directory (an I/O error: retried, then failed).
    let conn = drover_jobs::connect::database(db.url()).await.unwrap();
    insert_dataset(&conn, "ds-gone", "gone.csv").await;
    insert_dataset(&conn, "ds-dir", "dir.csv").await;
    std::fs::create_dir_all(data.path().join("datasets").join("dir.csv")).unwrap();

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let submit = |queue: &'static str, body: Value| {
        let client = client.clone();
        let url = format!("http://{api_addr}/api/v1/queues/{queue}/jobs");
        async move {
            let r = client
                .post(url)
                .bearer_auth(KEY)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            assert!(status.is_success(), "{status}: {body}");
            body["id"].as_str().unwrap().to_owned()
        }
    };
    for _ in 0..3 {
        submit("cleanup", json!({ "payload": { "dry_run": true } })).await;
    }
    let analysis =
        |ds: &str| json!({ "dataset_id": ds, "columns": ["text"], "chain_type": "sentiment" });
    submit("analysis", json!({ "payload": analysis("ds-gone") })).await;
    submit(
        "analysis",
        json!({
            "payload": analysis("ds-dir"),
            "options": { "max_attempts": 2, "backoff": { "type": "fixed", "delay_ms": 100 } },
        }),
    )
    .await;
    // One fire, a few seconds from now, of a cleanup job.
    let r = client
        .post(format!("http://{api_addr}/api/v1/schedules"))
        .bearer_auth(KEY)
        .json(&json!({
            "name": "obs-once",
            "cron": once_in(4),
            "queue": "cleanup",
            "payload": { "dry_run": true },
        }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    // 4 completed cleanups (3 submitted, 1 fired), 2 failed analyses, 1 retry.
    let w = eventually_async(T, "the worker to count what ran", || async {
        let w = scrape(&worker_addr).await?;
        let done = value(&w, "drover_jobs_completed_total", &[("queue", "cleanup")]);
        let failed = value(&w, "drover_jobs_failed_total", &[("queue", "analysis")]);
        (done == Some(4.0) && failed == Some(2.0)).then_some(w)
    })
    .await;
    let q = |queue: &'static str| [("queue", queue)];
    assert_eq!(
        value(&w, "drover_jobs_retried_total", &q("analysis")),
        Some(1.0)
    );
    assert_eq!(
        value(&w, "drover_jobs_retried_total", &q("cleanup")),
        Some(0.0)
    );
    assert_eq!(
        value(&w, "drover_jobs_failed_total", &q("cleanup")),
        Some(0.0)
    );
    // By reason: the missing file a permanent failure, the directory's last attempt.
    for (reason, n) in [
        ("permanent", 1.0),
        ("attempts_exhausted", 1.0),
        ("deferrals_exhausted", 0.0),
        ("stalled", 0.0),
    ] {
        assert_eq!(
            value(
                &w,
                "drover_jobs_failed_total",
                &[("queue", "analysis"), ("reason", reason)]
            ),
            Some(n),
            "{reason}"
        );
    }
    assert_eq!(
        value(&w, "drover_jobs_completed_total", &q("analysis")),
        Some(0.0)
    );
    for queue in ["export", "analysis", "aggregation", "cleanup"] {
        assert_eq!(value(&w, "drover_jobs_rescued_total", &q(queue)), Some(0.0));
    }
    let run = |queue, outcome| {
        value(
            &w,
            "drover_job_run_seconds_count",
            &[("queue", queue), ("outcome", outcome)],
        )
    };
    assert_eq!(run("cleanup", "completed"), Some(4.0));
    assert_eq!(run("analysis", "failed"), Some(2.0));
    assert_eq!(run("analysis", "retried"), Some(1.0));
    assert_eq!(
        value(&w, "drover_job_wait_seconds_count", &q("cleanup")),
        Some(4.0)
    );
    assert_eq!(
        value(&w, "drover_job_wait_seconds_count", &q("analysis")),
        Some(3.0),
        "three attempts started"
    );
    assert_eq!(
        value(
            &w,
            "drover_job_run_seconds_bucket",
            &[("queue", "cleanup"), ("le", "+Inf")]
        ),
        Some(4.0)
    );
    assert!(value(&w, "drover_archive_rows_total", &q("cleanup")).is_some());

    let s = scrape(&sched_addr).await.unwrap();
    let sched = [("schedule", "obs-once"), ("trigger", "schedule")];
    assert_eq!(value(&s, "drover_schedule_fires_total", &sched), Some(1.0));
    assert_eq!(
        value(
            &s,
            "drover_schedule_lateness_seconds_count",
            &[("schedule", "obs-once")]
        ),
        Some(1.0)
    );
    assert_eq!(value(&s, "drover_scheduler_leader", &[]), Some(1.0));
    assert_eq!(
        value(&s, "drover_jobs_enqueued_total", &q("cleanup")),
        Some(1.0)
    );

    let a = eventually_async(T, "the API's queue gauges to show the outcomes", || async {
        let a = scrape(&api_addr).await?;
        let done = value(
            &a,
            "drover_queue_jobs",
            &[("queue", "cleanup"), ("state", "completed")],
        );
        let failed = value(
            &a,
            "drover_queue_jobs",
            &[("queue", "analysis"), ("state", "failed")],
        );
        (done == Some(4.0) && failed == Some(2.0)).then_some(a)
    })
    .await;
    assert_eq!(
        value(&a, "drover_jobs_enqueued_total", &q("cleanup")),
        Some(3.0)
    );
    assert_eq!(
        value(&a, "drover_jobs_enqueued_total", &q("analysis")),
        Some(2.0)
    );
    for state in ["waiting", "active", "delayed"] {
        assert_eq!(
            value(
                &a,
                "drover_queue_jobs",
                &[("queue", "cleanup"), ("state", state)]
            ),
            Some(0.0),
            "{state}"
        );
    }
    assert_eq!(
        value(&a, "drover_queue_oldest_waiting_seconds", &q("cleanup")),
        Some(0.0)
    );
    assert_eq!(value(&a, "drover_queue_paused", &q("cleanup")), Some(0.0));
    assert_eq!(value(&a, "drover_workers", &q("cleanup")), Some(1.0));
    assert_eq!(value(&a, "drover_sse_clients", &[]), Some(0.0));
    // One typed submit operation per queue: 3 cleanup and 2 analysis submits.
    for (route, n) in [("add_cleanup_job", 3.0), ("add_analysis_job", 2.0)] {
        for series in [
            "drover_http_requests_total",
            "drover_http_request_seconds_count",
        ] {
            assert_eq!(
                value(&a, series, &[("route", route), ("method", "POST")]),
                Some(n),
                "{series} {route}"
            );
        }
    }
    assert_eq!(value(&a, "drover_redis_up", &[]), Some(1.0));
    assert_eq!(value(&a, "drover_database_up", &[]), Some(1.0));

    // Every name the alerts and the dashboard use is exported by one of the processes.
    let exported: BTreeSet<String> = [&a, &w, &s]
        .iter()
        .flat_map(|samples| samples.iter().map(|x| x.name.clone()))
        .collect();
    let alerts = alert_exprs(&workspace_file("ops/monitoring/alerts.yml"));
    assert!(alerts.len() >= 13, "{} alert expressions", alerts.len());
    let dashboard: Value =
        serde_json::from_str(&workspace_file("ops/monitoring/grafana-dashboard.json")).unwrap();
    let mut panels = Vec::new();
    dashboard_exprs(&dashboard, &mut panels);
    assert!(panels.len() >= 10, "{} dashboard queries", panels.len());
    let mut missing = BTreeMap::new();
    for (source, exprs) in [("alerts.yml", &alerts), ("grafana-dashboard.json", &panels)] {
        for e in exprs {
            for name in query_names(e) {
                // `up` is Prometheus's own series about its scrape targets.
                if name != "up" && !exported.contains(&name) {
                    missing.insert(name, format!("{source}: {e}"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "used but exported by no process: {missing:#?}"
    );
}
