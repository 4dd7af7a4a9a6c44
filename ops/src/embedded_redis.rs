//! The `redis-server` child that `drover up` starts when no Redis answers.
//!
//! It listens on a free loopback port, keeps an append-only file under
//! `<data dir>/redis` (so jobs survive a restart of the stack), and is stopped with
//! SIGTERM (which flushes the file) when `drover up` stops.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

/// A running `redis-server` child.
pub struct EmbeddedRedis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

/// Whether `redis-server` can be run.
pub async fn available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

impl EmbeddedRedis {
    /// Starts `program` with its data under `data_dir/redis`, and waits until it answers.
    pub async fn start(program: &str, data_dir: &Path) -> anyhow::Result<Self> {
        let dir = data_dir.join("redis");
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let dir = dir.canonicalize().unwrap_or(dir);
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .context("find a free port for redis-server")?;
        let child = Command::new(program)
            .arg("--port")
            .arg(port.to_string())
            .args([
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "yes",
                "--save",
                "",
                "--daemonize",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {program}"))?;
        let mut me = Self { child, port, dir };
        let url = me.url();
        let redis = drover_queue::Redis::new(drover_queue::RedisConfig::new(url.clone()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = me.child.try_wait() {
                bail!(
                    "redis-server exited at start ({status}); see {}",
                    me.dir.join("redis.log").display()
                );
            }
            if redis.ping().await.is_ok() {
                return Ok(me);
            }
            if Instant::now() > deadline {
                me.stop().await;
                bail!("redis-server did not answer on port {port} within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `redis://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Where its data lives.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops it with SIGTERM (it writes its append-only file and exits), or kills it
    /// after five seconds.
    pub async fn stop(&mut self) {
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
            if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}
