#![allow(clippy::unwrap_used)] // Tests fail by panicking.
//! `drover keys create | list | revoke`, and the development admin key of `drover up`,
//! run as the real binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The `drover` binary cargo built for these tests (same package: no extra build).
fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_drover")
}

/// Runs `drover <args>` with these variables (and none of the machine's Drover ones).
fn drover(args: &[&str], envs: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(binary());
    for (k, _) in std::env::vars() {
        if k.starts_with("DROVER_") || k == "REDIS_URL" || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn keys_are_created_listed_and_revoked() {
    for db in futures_block(drover_tests::TestDb::all()) {
        let env = [("DATABASE_URL", db.url().to_owned())];
        let out = drover(
            &["keys", "create", "--role", "submitter", "--name", "ci"],
            &env,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let key = text(&out.stdout).trim().to_owned();
        assert!(key.starts_with("drv_") && key.len() == 44, "{key}");
        assert!(text(&out.stderr).contains("shown only now"));

        let out = drover(&["keys", "list"], &env);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let list = text(&out.stdout);
        assert!(list.contains(&key[..12]), "{list}");
        assert!(list.contains("submitter") && list.contains("ci"), "{list}");
        assert!(!list.contains(&key), "the key itself is never shown again");

        let out = drover(&["keys", "revoke", &key[..12]], &env);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("revoked key 1"));
        let out = drover(&["keys", "revoke", "1"], &env);
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("already revoked"),
            "{}",
            text(&out.stderr)
        );

        let out = drover(&["keys", "create", "--role", "root"], &env);
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("unknown role"),
            "{}",
            text(&out.stderr)
        );
    }
}

/// Runs a future to completion on a runtime of its own.
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn drover_up_makes_and_prints_a_dev_admin_key_when_there_is_none() {
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(binary());
    for (k, _) in std::env::vars() {
        if k.starts_with("DROVER_") || k == "REDIS_URL" || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    // The machine's Redis; never a redis-server of drover up's own, which would outlive
    // the test if it failed half-way.
    let mut child = cmd
        .arg("up")
        .env("DROVER_DATA_DIR", data.path())
        .env("DROVER_API_ADDR", format!("127.0.0.1:{port}"))
        .env("REDIS_URL", drover_tests::shared_redis_url())
        .env("DROVER_REDIS_SERVER", "/nonexistent/redis-server")
        .env("DROVER_REDIS_NAMESPACE", drover_tests::namespace())
        .env("DROVER_WORKER_METRICS_ADDR", "off")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut child = KillOnDrop(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let key = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("drover up prints a key");
        if let Some(k) = line.trim().strip_prefix("drv_") {
            break format!("drv_{k}");
        }
    };

    // The key is an admin key of the running API.
    let status = futures_block(async {
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/api/v1/queues");
        drover_tests::eventually_async(Duration::from_secs(30), "the API to answer", || async {
            client
                .get(&url)
                .bearer_auth(&key)
                .send()
                .await
                .ok()
                .map(|r| r.status().as_u16())
        })
        .await
    });
    assert_eq!(status, 200);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.0.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    drover_tests::eventually(Duration::from_secs(60), "drover up to stop", || {
        child.0.try_wait().unwrap().map(drop)
    });

    // The key is stored (hashed) in the stack's database.
    let out = drover(
        &["keys", "list"],
        &[("DROVER_DATA_DIR", data.path().display().to_string())],
    );
    let list = text(&out.stdout);
    assert_eq!(
        list.lines().filter(|l| l.contains(" dev ")).count(),
        1,
        "{list}"
    );
}

/// A child process killed (and reaped) if the test ends before it exits.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
