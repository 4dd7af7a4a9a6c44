//! What the benchmarks share: a `redis-server` of their own (no persistence, so
//! its `used_memory` is the benchmark's alone), a scratch database (a SQLite file
//! or a fresh PostgreSQL database, dropped at the end), Drover's binaries started as
//! real processes, and their memory and CPU read from `/proc`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use sea_orm::{ConnectionTrait, Database};
use tokio::process::{Child, Command};

/// A free loopback port.
pub fn free_port() -> anyhow::Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .context("find a free port")
}

/// A `redis-server` child without persistence, killed on drop.
pub struct ScratchRedis {
    _child: Child,
    port: u16,
}

impl ScratchRedis {
    /// Starts `program` on a free port and waits until it answers.
    pub async fn start(program: &str, dir: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        let child = Command::new(program)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {program}"))?;
        let me = Self {
            _child: child,
            port,
        };
        let redis = drover_queue::Redis::new(drover_queue::RedisConfig::new(me.url()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.ping().await.is_err() {
            if Instant::now() > deadline {
                bail!("redis-server did not answer on port {port} within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(me)
    }

    /// `redis://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// Redis's `used_memory`, in bytes.
pub async fn used_memory(redis: &drover_queue::Redis) -> anyhow::Result<u64> {
    let mut conn = redis.dedicated().await?;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("INFO memory has no used_memory")
}

/// A database that exists for one benchmark run.
pub struct ScratchDb {
    pub url: String,
    pub engine: &'static str,
    /// PostgreSQL: the server's `postgres` database URL and the scratch database's name.
    pg: Option<(String, String)>,
}

impl ScratchDb {
    /// A SQLite file under `dir`.
    #[must_use]
    pub fn sqlite(dir: &Path) -> Self {
        Self {
            url: format!("sqlite://{}?mode=rwc", dir.join("bench.db").display()),
            engine: "sqlite",
            pg: None,
        }
    }

    /// A fresh database on the PostgreSQL server of `server_url`.
    pub async fn postgres(server_url: &str) -> anyhow::Result<Self> {
        let name = format!(
            "drover_bench_{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        let admin = with_database(server_url, "postgres");
        let db = Database::connect(admin.as_str())
            .await
            .context("connect to the PostgreSQL server")?;
        db.execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("create database {name}"))?;
        db.close().await.ok();
        Ok(Self {
            url: with_database(server_url, &name),
            engine: "postgres",
            pg: Some((admin, name)),
        })
    }

    /// Drops the PostgreSQL database (a SQLite file goes with its directory).
    pub async fn drop_db(self) {
        if let Some((admin, name)) = self.pg
            && let Ok(db) = Database::connect(admin.as_str()).await
        {
            let _ = db
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
            db.close().await.ok();
        }
    }
}

/// `url` with its database name replaced.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A Drover binary next to this one (`target/release/drover-worker` beside
/// `target/release/drover`): the benchmark measures the same build it is.
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("locate the drover binary")?;
    let path = me.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p drover-worker -p drover-api)",
            path.display()
        );
    }
    Ok(path)
}

/// A Drover process started by a benchmark, killed on drop.
pub struct Proc {
    child: Child,
    pub pid: u32,
}

impl Proc {
    /// Starts `binary` with `env` on top of this process's environment, its output to
    /// `log`.
    pub fn start(binary: &Path, env: &[(&str, String)], log: &Path) -> anyhow::Result<Self> {
        let out =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(binary);
        cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let pid = child.id().context("the child has no pid")?;
        Ok(Self { child, pid })
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self, what: &str) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!("{what} exited ({status})");
        }
        Ok(())
    }

    /// Stops it with SIGTERM, or kills it after ten seconds.
    pub async fn stop(mut self) {
        if let Ok(pid) = i32::try_from(self.pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Resident memory of `pid`, in bytes (`VmRSS`).
#[must_use]
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// CPU time `pid` has used (user + system), in seconds.
#[must_use]
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // Linux reports CPU time in USER_HZ, 100 per second on every architecture it runs on.
    Some(ticks / 100.0)
}

/// Samples a process's RSS every 20 ms in the background and keeps the peak.
pub struct RssWatch {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl RssWatch {
    #[must_use]
    pub fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(rss_bytes(pid).unwrap_or(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                if let Some(r) = rss_bytes(pid) {
                    p.fetch_max(r, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Self { peak, stop, task }
    }

    /// The peak so far, in bytes.
    #[must_use]
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Stops sampling; returns the peak.
    pub async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let peak = self.peak.clone();
        let _ = self.task.await;
        peak.load(Ordering::Relaxed)
    }
}

/// Megabytes (10^6 bytes), rounded to 0.1.
#[must_use]
pub fn mb(bytes: u64) -> f64 {
    (bytes as f64 / 1e5).round() / 10.0
}
