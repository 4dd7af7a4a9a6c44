//! A small W3C WebDriver client over reqwest (which the tests already use), driving
//! Debian's headless `chromium` through `chromedriver`, started on a free port and
//! stopped by pid. It has what the dashboard tests need: open a page, find, click,
//! type, read, run a script, read the browser console, take a screenshot.

use std::path::{Path, PathBuf};
use std::time::Duration;

use drover_tests::procs::Proc;
use drover_tests::{eventually_async, free_addr};
use serde_json::{Value, json};

/// The W3C name of an element reference in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where an executable is: `$var`, else the first of `names` on the `PATH`. Panics
/// with what to install: CI installs Chromium (`.ci/run`), so a missing browser is a
/// failure, not a skip.
fn find_exe(var: &str, names: &[&str]) -> PathBuf {
    if let Ok(p) = std::env::var(var) {
        return PathBuf::from(p);
    }
    let path = std::env::var("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "{} not found (set {var} or put it on the PATH): the dashboard tests drive a real \
         headless Chromium; install it with `apt-get install -y chromium chromium-driver` \
         (.ci/run does)",
        names.join(" or ")
    );
}

/// A `chromedriver` of the test's own.
pub struct Driver {
    base: String,
    http: reqwest::Client,
    _proc: Proc,
}

impl Driver {
    /// Starts chromedriver on a free port and waits until it answers.
    pub async fn start() -> Self {
        let exe = find_exe("CHROMEDRIVER", &["chromedriver"]);
        let port = free_addr().port();
        let port_arg = format!("--port={port}");
        let proc = Proc::start_path(&exe.to_string_lossy(), &[&port_arg, "--silent"], &[]);
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let status = format!("{base}/status");
        eventually_async(
            Duration::from_secs(30),
            "chromedriver to answer",
            || async {
                let v: Value = http.get(&status).send().await.ok()?.json().await.ok()?;
                (v["value"]["ready"] == true).then_some(())
            },
        )
        .await;
        Self {
            base,
            http,
            _proc: proc,
        }
    }

    /// A new headless browser window of `width`×`height`.
    pub async fn browser(&self, width: u32, height: u32) -> Browser {
        let chromium = find_exe("CHROMIUM", &["chromium", "chromium-browser"]);
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--no-first-run",
                         format!("--window-size={width},{height}")],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let v = call(
            &self.http,
            "POST",
            &format!("{}/session", self.base),
            Some(caps),
        )
        .await;
        let id = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id from chromedriver: {v}"))
            .to_owned();
        Browser {
            url: format!("{}/session/{id}", self.base),
            http: self.http.clone(),
        }
    }
}

async fn call(http: &reqwest::Client, method: &str, url: &str, body: Option<Value>) -> Value {
    let req = match method {
        "GET" => http.get(url),
        "DELETE" => http.delete(url),
        _ => http.post(url).json(&body.unwrap_or_else(|| json!({}))),
    };
    let res = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = res.status();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {url}: {status} {v}");
    v["value"].clone()
}

/// One browser session.
pub struct Browser {
    url: String,
    http: reqwest::Client,
}

/// How long a test waits for the page to show something.
pub const T: Duration = Duration::from_secs(60);

impl Browser {
    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        call(&self.http, method, &format!("{}{path}", self.url), body).await
    }

    async fn try_cmd(&self, path: &str, body: Value) -> Option<Value> {
        let res = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .ok()?;
        let ok = res.status().is_success();
        let v: Value = res.json().await.ok()?;
        ok.then(|| v["value"].clone())
    }

    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// The first element matching `css` now, if any.
    async fn find_now(&self, css: &str) -> Option<String> {
        let v = self
            .try_cmd("/element", json!({"using": "css selector", "value": css}))
            .await?;
        v[ELEMENT].as_str().map(str::to_owned)
    }

    /// Waits until an element matches `css`.
    pub async fn find(&self, css: &str) -> String {
        eventually_async(T, &format!("an element {css:?}"), || self.find_now(css)).await
    }

    /// Waits for `css`, then clicks it (as a user would: scrolled into view, on top).
    pub async fn click(&self, css: &str) {
        eventually_async(T, &format!("to click {css:?}"), || async {
            let el = self.find_now(css).await?;
            self.try_cmd(&format!("/element/{el}/click"), json!({}))
                .await
        })
        .await;
    }

    /// Waits for `css`, then types `text` into it.
    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.cmd(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// The text of the first element matching `css` now (empty if none).
    pub async fn text(&self, css: &str) -> String {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
            json!([css]),
        )
        .await
        .as_str()
        .unwrap_or("")
        .to_owned()
    }

    /// Waits until the text of `css` contains `want`; returns it.
    pub async fn wait_text(&self, css: &str, want: &str) -> String {
        eventually_async(T, &format!("{css:?} to show {want:?}"), || async {
            let t = self.text(css).await;
            t.contains(want).then_some(t)
        })
        .await
    }

    /// Whether an element matches `css` now.
    pub async fn exists(&self, css: &str) -> bool {
        self.js(
            "return !!document.querySelector(arguments[0]);",
            json!([css]),
        )
        .await
            == Value::Bool(true)
    }

    /// Runs `script` (a function body) with `args`; returns what it returned.
    pub async fn js(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Runs an async `script`: it calls `arguments[arguments.length - 1]` with its result.
    pub async fn js_async(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Waits until `script` returns true.
    pub async fn wait_js(&self, what: &str, script: &str, args: Value) {
        eventually_async(T, what, || async {
            (self.js(script, args.clone()).await == Value::Bool(true)).then_some(())
        })
        .await;
    }

    /// Sets the window's size (phone width, say).
    pub async fn resize(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
    }

    /// The browser console since the last call: `(level, message)`.
    pub async fn console(&self) -> Vec<(String, String)> {
        let v = self
            .cmd("POST", "/se/log", Some(json!({ "type": "browser" })))
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["level"].as_str().unwrap_or("").to_owned(),
                            e["message"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts that the console holds no error, but those containing one of `expected`
    /// (a refusal the test provoked on purpose, which Chromium logs as a failed load).
    pub async fn assert_no_console_errors(&self, expected: &[&str]) {
        let errors: Vec<_> = self
            .console()
            .await
            .into_iter()
            .filter(|(level, m)| level == "SEVERE" && !expected.iter().any(|x| m.contains(x)))
            .collect();
        assert!(
            errors.is_empty(),
            "the browser console has errors: {errors:#?}"
        );
    }

    /// The cookie `name` as the browser keeps it (with its `HttpOnly` and `SameSite`),
    /// which the page's own script cannot read.
    pub async fn cookie_json(&self, name: &str) -> Value {
        self.cmd("GET", &format!("/cookie/{name}"), None).await
    }

    /// Saves a PNG screenshot of the window to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let v = self.cmd("GET", "/screenshot", None).await;
        let png = base64_decode(v.as_str().unwrap_or(""));
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(path, png).unwrap();
    }

    /// Ends the session (closes the browser).
    pub async fn quit(self) {
        let _ = self.http.delete(&self.url).send().await;
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter_map(val) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
