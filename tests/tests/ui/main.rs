//! The dashboard in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`), against the real `drover-api` and `drover-worker` processes on a
//! Redis and a database of the test's own.
//!
//! Each test starts its own stack and browser; they run one at a time (a browser each
//! on a shared machine is plenty). Every test ends by asserting that the API answered
//! no 5xx (its own request counter) and that the browser console holds no error.
//! With `DROVER_SCREENSHOTS=1` the tests also save the screenshots in `docs/screenshots/`.
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

mod webdriver;

use std::path::{Path, PathBuf};
use std::time::Duration;

use drover_tests::procs::Proc;
use drover_tests::{TestDb, TestRedis, eventually_async, free_addr, namespace};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};
use webdriver::{Browser, Driver};

const ADMIN: &str = "ui-admin-key-0123456789abcdef";
const SUBMITTER: &str = "ui-submitter-key-0123456789abcdef";
const T: Duration = Duration::from_secs(60);

/// One browser test at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The API, a worker, and their Redis, database and files.
struct Stack {
    base: String,
    http: reqwest::Client,
    db: TestDb,
    data: tempfile::TempDir,
    _redis: TestRedis,
    _api: Proc,
    _worker: Proc,
}

impl Stack {
    async fn start() -> Self {
        let redis = TestRedis::start();
        let db = TestDb::sqlite();
        let data = tempfile::tempdir().unwrap();
        let addr = free_addr();
        let vars = vec![
            ("REDIS_URL", redis.url()),
            ("DATABASE_URL", db.url().to_owned()),
            ("DROVER_DATA_DIR", data.path().display().to_string()),
            ("DROVER_REDIS_NAMESPACE", namespace()),
            (
                "DROVER_API_KEYS",
                format!("admin:{ADMIN},submitter:{SUBMITTER}"),
            ),
            ("DROVER_API_ADDR", addr.to_string()),
            ("DROVER_API_RATE_ADMIN", "100000".to_owned()),
            ("DROVER_API_RATE_SUBMITTER", "100000".to_owned()),
            ("DROVER_WORKER_METRICS_ADDR", "off".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ];
        let api = Proc::start("drover-api", &vars);
        let worker = Proc::start("drover-worker", &vars);
        let base = format!("http://{addr}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let ready = format!("{base}/ready");
        eventually_async(T, "the API to be ready", || async {
            let r = http.get(&ready).send().await.ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
        Self {
            base,
            http,
            db,
            data,
            _redis: redis,
            _api: api,
            _worker: worker,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Submits a job with the admin key; returns its id.
    async fn submit(&self, queue: &str, body: Value) -> String {
        self.submit_as(ADMIN, queue, body).await
    }

    /// Submits a job with `key`; returns its id.
    async fn submit_as(&self, key: &str, queue: &str, body: Value) -> String {
        let r = self
            .http
            .post(self.url(&format!("/api/v1/queues/{queue}/jobs")))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn job(&self, id: &str) -> Value {
        self.http
            .get(self.url(&format!("/api/v1/jobs/{id}")))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn wait_state(&self, id: &str, state: &str) -> Value {
        eventually_async(T, &format!("job {id} to be {state}"), || async {
            let j = self.job(id).await;
            (j["state"] == state).then_some(j)
        })
        .await
    }

    /// Asserts that the API answered no 5xx so far (its request counter).
    async fn assert_no_5xx(&self) {
        let text = drover_tests::scrape::text(&self.http, &self.url("/metrics")).await;
        let requests: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("drover_http_requests_total{"))
            .collect();
        assert!(!requests.is_empty(), "the API counts its requests");
        let bad: Vec<&&str> = requests
            .iter()
            .filter(|l| l.contains("status=\"5") && !l.ends_with(" 0"))
            .collect();
        assert!(bad.is_empty(), "the API answered 5xx: {bad:#?}");
    }
}

async fn browser(driver: &Driver) -> Browser {
    driver.browser(1280, 900).await
}

/// Signs in through the form, with the keyboard (Enter submits).
async fn sign_in(b: &Browser, stack: &Stack, key: &str, role: &str) {
    b.goto(&stack.url("/ui/")).await;
    b.type_into("#api-key", &format!("{key}\u{E007}")).await;
    b.wait_text("#who", &format!("({role})")).await;
}

/// Where the screenshots go, when they are asked for.
fn screenshot_path(name: &str) -> Option<PathBuf> {
    std::env::var("DROVER_SCREENSHOTS")
        .ok()
        .filter(|v| v == "1")?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    Some(dir.join(format!("{name}.png")))
}

async fn screenshot(b: &Browser, name: &str) {
    if let Some(p) = screenshot_path(name) {
        b.screenshot(&p).await;
    }
}

/// Asserts that every form control on the page has a label a screen reader can read.
async fn assert_labelled(b: &Browser) {
    let unlabelled = b
        .js(
            "return [...document.querySelectorAll('main input, main select, main button')]
               .filter(e => !(e.closest('label') || e.getAttribute('aria-label') ||
                              (e.id && document.querySelector(`label[for=\"${e.id}\"]`)) ||
                              (e.tagName === 'BUTTON' && e.textContent.trim())))
               .map(e => e.outerHTML);",
            json!([]),
        )
        .await;
    assert_eq!(unlabelled, json!([]), "controls without a label");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_an_admin_key_a_wrong_key_is_refused_and_sign_out_ends_the_session() {
    let _one = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let driver = Driver::start().await;
    let b = browser(&driver).await;

    b.goto(&stack.url("/ui/")).await;
    b.type_into("#api-key", "not-a-key-of-this-api-0000\u{E007}")
        .await;
    b.wait_text("#flash", "the API key is unknown or revoked")
        .await;
    assert!(b.exists("#sign-in").await, "still on the sign-in form");

    b.js("document.querySelector('#api-key').value = '';", json!([]))
        .await;
    b.type_into("#api-key", &format!("{ADMIN}\u{E007}")).await;
    b.wait_text("#who", "(admin)").await;
    b.find("#overview [data-queue=export]").await;

    // The session cookie: HttpOnly (no script reads it), SameSite=Strict.
    let c = b.cookie_json("drover_session").await;
    assert_eq!(c["httpOnly"], true, "{c}");
    assert_eq!(c["sameSite"], "Strict", "{c}");
    let sid = c["value"].as_str().unwrap().to_owned();
    let cookie = format!("drover_session={sid}");
    assert_eq!(
        b.js("return document.cookie;", json!([])).await,
        json!(""),
        "the page's script cannot read the session"
    );

    // The cookie opens the API; a change without the CSRF token is refused and does
    // nothing.
    let r = stack
        .http
        .get(stack.url("/api/v1/queues"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = stack
        .http
        .post(stack.url("/api/v1/queues/export/pause"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("CSRF"),
        "{body}"
    );
    let queues: Value = stack
        .http
        .get(stack.url("/api/v1/queues"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        queues["queues"]
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["paused"] == false),
        "nothing was paused: {queues}"
    );

    // Signing out ends the session on the server: the same cookie no longer works.
    b.click("#sign-out").await;
    b.find("#sign-in").await;
    b.wait_text("#flash", "Signed out").await;
    let r = stack
        .http
        .get(stack.url("/api/v1/queues"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a signed-out session opens nothing");

    b.assert_no_console_errors(&["/ui/session"]).await;
    stack.assert_no_5xx().await;
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_submitted_through_the_api_appears_and_completes_on_the_open_page() {
    let _one = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let driver = Driver::start().await;
    let b = browser(&driver).await;
    sign_in(&b, &stack, ADMIN, "admin").await;

    // The queue page follows the queue's events.
    b.goto(&stack.url("/ui/#/queues/cleanup")).await;
    b.wait_js(
        "the queue page to follow its events",
        "return document.body.dataset.live === 'on';",
        json!([]),
    )
    .await;
    // A mark that a reload would wipe.
    b.js("window.__noReload = 1;", json!([])).await;
    let id = stack
        .submit("cleanup", json!({"payload": {"dry_run": true}}))
        .await;
    b.find(&format!(
        "#live tr[data-job-id='{id}'][data-state='completed']"
    ))
    .await;
    assert_eq!(
        b.js("return window.__noReload;", json!([])).await,
        json!(1),
        "no reload"
    );
    assert_labelled(&b).await;
    b.click("#tab-completed").await;
    b.find(&format!("#jobs tr[data-job-id='{id}']")).await;
    screenshot(&b, "queue").await;

    // The overview counts it, and the next one, live.
    b.goto(&stack.url("/ui/#/")).await;
    b.wait_js(
        "the overview to follow the events",
        "return document.body.dataset.live === 'on';",
        json!([]),
    )
    .await;
    b.wait_text("[data-queue=cleanup] [data-count=completed] b", "1")
        .await;
    b.js("window.__noReload = 2;", json!([])).await;
    let second = stack
        .submit("cleanup", json!({"payload": {"dry_run": true}}))
        .await;
    stack.wait_state(&second, "completed").await;
    b.wait_js(
        "the overview to count the second job",
        "const e = document.querySelector('[data-queue=cleanup] [data-count=completed] b');
         return !!e && e.textContent === '2';",
        json!([]),
    )
    .await;
    assert_eq!(b.js("return window.__noReload;", json!([])).await, json!(2));
    assert!(
        b.exists("[data-queue=cleanup] svg.chart rect.c").await,
        "the per-minute chart"
    );
    screenshot(&b, "overview").await;

    // Phone width: nothing wider than the screen.
    b.resize(390, 844).await;
    b.wait_js(
        "the page to fit a phone's width",
        "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
        json!([]),
    )
    .await;

    b.assert_no_console_errors(&[]).await;
    stack.assert_no_5xx().await;
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_from_the_ui_holds_new_jobs_and_resume_runs_them() {
    let _one = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let driver = Driver::start().await;
    let b = browser(&driver).await;
    sign_in(&b, &stack, ADMIN, "admin").await;

    b.goto(&stack.url("/ui/#/queues/export")).await;
    b.click("#pause").await;
    b.wait_text("#queue-status", "paused").await;
    b.find("#resume").await;
    b.wait_js(
        "the queue page to follow its events",
        "return document.body.dataset.live === 'on';",
        json!([]),
    )
    .await;

    let held = stack
        .submit(
            "export",
            json!({"payload": {"source": "job_history", "format": "csv"}}),
        )
        .await;
    // The worker is running: a job of another queue completes...
    let other = stack
        .submit("cleanup", json!({"payload": {"dry_run": true}}))
        .await;
    stack.wait_state(&other, "completed").await;
    // ...while the paused queue's job has not started.
    let j = stack.job(&held).await;
    assert_eq!(j["state"], "waiting", "{j}");
    assert_eq!(j["attempts"], 0, "{j}");
    b.find(&format!(
        "#live tr[data-job-id='{held}'][data-state='waiting']"
    ))
    .await;

    b.click("#resume").await;
    b.find(&format!(
        "#live tr[data-job-id='{held}'][data-state='completed']"
    ))
    .await;
    b.wait_text("#queue-status", "running").await;
    stack.wait_state(&held, "completed").await;

    b.assert_no_console_errors(&[]).await;
    stack.assert_no_5xx().await;
    b.quit().await;
}

/// A small CSV with a text column worth analysing and a number column.
fn reviews_csv() -> String {
    let mut s = String::from("n,review\n");
    let lines = [
        "I love this, it is wonderful and great",
        "terrible, awful, I hate it",
        "it arrived on tuesday",
        "really good value, happy with it",
        "bad quality and very disappointing",
        "the box is blue",
    ];
    for i in 0..60 {
        s.push_str(&format!("{i},\"{}\"\n", lines[i % lines.len()]));
    }
    s
}

async fn upload_via_api(stack: &Stack) -> String {
    let r = stack
        .http
        .post(stack.url("/api/v1/datasets?name=reviews.csv"))
        .bearer_auth(ADMIN)
        .header("Content-Type", "text/csv")
        .body(reviews_csv())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_shows_each_attempts_error_and_bulk_retry_reruns_it() {
    let _one = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let driver = Driver::start().await;
    let b = browser(&driver).await;
    let dataset = upload_via_api(&stack).await;

    // The analysis writes under <data>/tmp: a file in its place fails each attempt.
    let tmp = stack.data.path().join("tmp");
    std::fs::remove_dir_all(&tmp).unwrap();
    std::fs::write(&tmp, "in the way").unwrap();
    let id = stack
        .submit(
            "analysis",
            json!({
                "payload": {"dataset_id": dataset, "columns": ["review"], "chain_type": "sentiment"},
                "options": {"max_attempts": 2, "backoff": {"type": "fixed", "delay_ms": 100}},
            }),
        )
        .await;
    let failed = stack.wait_state(&id, "failed").await;
    assert_eq!(failed["errors"].as_array().unwrap().len(), 2, "{failed}");

    sign_in(&b, &stack, ADMIN, "admin").await;
    b.goto(&stack.url(&format!("/ui/#/jobs/{id}"))).await;
    b.find("#attempts tr[data-attempt='2']").await;
    // Each attempt's error and worker, as the API has them: the page's column of
    // `td.<class>` against the API's `errors[].<field>`.
    let column = |class: &'static str, field: &'static str| {
        let b = &b;
        let failed = &failed;
        async move {
            let shown = b
                .js(
                    "return [...document.querySelectorAll('#attempts td.' + arguments[0])].map(e => e.textContent);",
                    json!([class]),
                )
                .await;
            let expected: Vec<Value> = failed["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e[field].clone())
                .collect();
            assert!(expected.iter().all(Value::is_string), "{field}: {failed}");
            assert_eq!(shown, Value::Array(expected), "each attempt's {field}");
            shown
        }
    };
    let shown = column("error", "error").await;
    column("worker", "worker").await;
    assert!(
        shown[0].as_str().unwrap().len() > 3,
        "a real message: {shown}"
    );
    screenshot(&b, "job-failed").await;

    // Out of the way; retry it in bulk from the failed list.
    std::fs::remove_file(&tmp).unwrap();
    b.goto(&stack.url("/ui/#/queues/analysis?state=failed"))
        .await;
    b.click(&format!("input[data-select][value='{id}']")).await;
    b.click("#bulk-retry-selected").await;
    b.click("#confirm-yes").await;
    b.wait_text("#flash", "retry: 1 done, 0 skipped").await;
    let done = stack.wait_state(&id, "completed").await;
    assert_eq!(
        done["errors"].as_array().unwrap().len(),
        2,
        "the history stays"
    );
    b.goto(&stack.url(&format!("/ui/#/jobs/{id}"))).await;
    b.wait_js(
        "the job page to show it completed",
        "return document.querySelector('[data-state]') && document.querySelector('#main [data-state]').dataset.state === 'completed';",
        json!([]),
    )
    .await;

    b.assert_no_console_errors(&[]).await;
    stack.assert_no_5xx().await;
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_a_job_by_id_and_by_a_payload_word_including_an_archived_one() {
    let _one = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let driver = Driver::start().await;
    let b = browser(&driver).await;

    let live = stack
        .submit(
            "export",
            json!({"payload": {"source": "job_history", "format": "jsonl"}}),
        )
        .await;
    stack.wait_state(&live, "completed").await;
    // A job the retention archived: a row of job_history, as the cleanup job writes it.
    let archived = ulid::Ulid::new().to_string();
    let dbc = drover_jobs::connect::database(stack.db.url())
        .await
        .unwrap();
    let now = chrono::Utc::now();
    drover_entities::job_history::ActiveModel {
        id: Set(archived.clone()),
        queue: Set("export".into()),
        state: Set("completed".into()),
        payload: Set(r#"{"source":"aggregates","format":"jsonl","note":"zebra"}"#.into()),
        result: Set(Some("{}".into())),
        errors: Set("[]".into()),
        failed_reason: Set(None),
        attempts: Set(1),
        max_attempts: Set(3),
        priority: Set(0),
        request_id: Set(None),
        created_at: Set(now - chrono::Duration::hours(2)),
        started_at: Set(Some(now - chrono::Duration::hours(2))),
        finished_at: Set(Some(now - chrono::Duration::hours(2))),
        archived_at: Set(now - chrono::Duration::hours(1)),
        run_at: Set(None),
        options: Set(None),
        progress_message: Set(None),
        worker: Set(None),
        submitter_key_id: Set(None),
    }
    .insert(&dbc)
    .await
    .unwrap();

    sign_in(&b, &stack, ADMIN, "admin").await;
    b.goto(&stack.url("/ui/#/queues/export")).await;

    let search = |text: String| {
        let b = &b;
        async move {
            b.js(
                "const q = document.querySelector('#search-q'); q.value = '';
                 document.querySelector('#search-results').replaceChildren();",
                json!([]),
            )
            .await;
            b.type_into("#search-q", &format!("{text}\u{E007}")).await;
            b.wait_text("#search-results", "examined").await;
            b.js(
                "return [...document.querySelectorAll('#search-results tr[data-job-id]')].map(e => e.dataset.jobId);",
                json!([]),
            )
            .await
        }
    };
    assert_eq!(search(live.clone()).await, json!([live]), "by id");
    assert_eq!(
        search(archived.clone()).await,
        json!([archived]),
        "an archived job by id"
    );
    assert_eq!(
        search("zebra".into()).await,
        json!([archived]),
        "an archived job by a word"
    );
    let both = search("JSONL".into()).await;
    assert_eq!(
        both,
        json!([live, archived]),
        "Redis first, then the archive"
    );
    assert!(b.exists("#search-results .badge.archived").await);
    assert_eq!(search("nothing-like-this".into()).await, json!([]));
    b.wait_text("#search-results", "every job was examined")
        .await;

    b.assert_no_console_errors(&[]).await;
    stack.assert_no_5xx().await;
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitter_key_sees_no_admin_actions_and_the_api_refuses_them() {
    let _one = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let driver = Driver::start().await;
    let b = browser(&driver).await;
    // A submitter key reads only the jobs it submitted: its own shows, the admin's not.
    let id = stack
        .submit_as(SUBMITTER, "cleanup", json!({"payload": {"dry_run": true}}))
        .await;
    let others = stack
        .submit("cleanup", json!({"payload": {"dry_run": true}}))
        .await;
    stack.wait_state(&id, "completed").await;
    stack.wait_state(&others, "completed").await;

    sign_in(&b, &stack, SUBMITTER, "submitter").await;
    b.wait_text("#main", "need an admin key").await;
    assert_eq!(
        b.js(
            "return document.querySelector('#nav a[href=\"#/workers\"]').hidden;",
            json!([])
        )
        .await,
        json!(true),
        "no workers page"
    );
    b.goto(&stack.url("/ui/#/queues/cleanup?state=completed"))
        .await;
    b.find(&format!("#jobs tr[data-job-id='{id}']")).await;
    assert!(
        !b.exists(&format!("#jobs tr[data-job-id='{others}']")).await,
        "another key's job is not listed"
    );
    b.wait_text("#queue-controls", "Read-only").await;
    for admin_only in [
        "#pause",
        "#resume",
        "#clean",
        "#bulk button",
        "input[data-select]",
    ] {
        assert!(
            !b.exists(admin_only).await,
            "{admin_only} is shown to a submitter"
        );
    }
    b.goto(&stack.url(&format!("/ui/#/jobs/{id}"))).await;
    b.find("#timeline li").await;
    for admin_only in ["#retry", "#delete", "#promote"] {
        assert!(
            !b.exists(admin_only).await,
            "{admin_only} is shown to a submitter"
        );
    }

    // And the API refuses them anyway, with its message.
    let refused = b
        .js_async(
            "const done = arguments[arguments.length - 1];
             fetch('/api/v1/queues/cleanup/pause', {method: 'POST', headers: {'X-CSRF-Token': me.csrf}})
               .then(r => r.json().then(j => done([r.status, j.error.message])));",
            json!([]),
        )
        .await;
    assert_eq!(refused[0], 403, "{refused}");
    assert!(refused[1].as_str().unwrap().contains("admin"), "{refused}");

    b.assert_no_console_errors(&["/pause"]).await;
    stack.assert_no_5xx().await;
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_a_csv_start_an_analysis_watch_its_progress_and_see_the_label_chart() {
    let _one = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let driver = Driver::start().await;
    let b = browser(&driver).await;
    let files = tempfile::tempdir().unwrap();
    let csv = files.path().join("reviews.csv");
    std::fs::write(&csv, reviews_csv()).unwrap();

    sign_in(&b, &stack, ADMIN, "admin").await;
    b.goto(&stack.url("/ui/#/datasets")).await;
    b.find("#datasets .empty").await;
    b.type_into("#dataset-file", &csv.display().to_string())
        .await;
    b.click("#upload button[type=submit]").await;
    b.find("#columns tr[data-column-row]").await;
    assert_eq!(
        b.js(
            "return document.querySelector('#upload-progress') === null;",
            json!([])
        )
        .await,
        json!(true),
        "the page moved on to the dataset"
    );
    // The text column is ranked first.
    assert_eq!(
        b.js(
            "return document.querySelector('#columns tbody tr').dataset.columnRow;",
            json!([])
        )
        .await,
        json!("review")
    );
    b.click("input[data-column='review']").await;
    b.wait_text("#estimate", "About").await;
    b.click("#start-analysis").await;
    b.wait_js(
        "the job page's progress bar to reach 100 %",
        "const p = document.querySelector('#progress'); return !!p && p.value === 100;",
        json!([]),
    )
    .await;
    b.wait_text("#progress-text", "100 %").await;
    b.find("#timeline li[data-type='job:completed']").await;
    screenshot(&b, "job").await;
    b.click("#analysis-link").await;
    b.find("#labels-chart").await;
    assert_eq!(
        b.js(
            "return document.querySelectorAll('#labels-chart rect').length;",
            json!([])
        )
        .await,
        json!(3),
        "positive, neutral, negative"
    );
    b.find("#histogram-chart rect").await;
    let href = b
        .js(
            "return document.querySelector('#results-download').getAttribute('href');",
            json!([]),
        )
        .await;
    let r = stack
        .http
        .get(stack.url(href.as_str().unwrap()))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the per-row results download");
    screenshot(&b, "analysis").await;

    b.assert_no_console_errors(&[]).await;
    stack.assert_no_5xx().await;
    b.quit().await;
}
