//! Drover's test harness: what any test needs to run against real parts in isolation.
//!
//! - [`TestRedis`]: a `redis-server` of the test's own, on a free port, with its data in
//!   a temporary directory; stopped (and deleted) when dropped. It can be killed and
//!   restarted on the same port with its data, for outage tests.
//! - [`TestCluster`]: a Redis Cluster of the test's own, three masters with a replica
//!   each; nodes can be killed by pid and slots resharded.
//! - [`TestTarget`]: whether a suite runs on one server or on a cluster; the suites
//!   that must work on both run once per target.
//! - [`TestDb`]: a fresh SQLite file, or a fresh PostgreSQL database when
//!   `TEST_DATABASE_URL` is set; [`TestDb::all`] gives both.
//! - [`namespace`]: a unique key namespace, for tests that share the machine's Redis.
//! - [`eventually`]: wait for a condition with a deadline (never a bare sleep).
//! - [`procs`]: start Drover's real binaries and stop them by pid.
//! - [`otlp`]: an OTLP/HTTP receiver that keeps the spans processes export.
//! - [`Proxy`]: a TCP proxy that can pause, cut connections, lose a reply or go slow,
//!   for partition tests.
//! - [`finish`]: a worker in the test's process that makes finished jobs for real.
//! - [`scrape`]: a process's `/metrics`, and a series' value in it.

mod db;
pub mod finish;
pub mod otlp;
pub mod procs;
pub mod proxy;
mod redis_cluster;
mod redis_server;
pub mod scrape;
mod target;
mod wait;

pub use db::{Engine, TestDb};
pub use proxy::Proxy;
pub use redis_cluster::{ClusterNode, TestCluster};
pub use redis_server::{RedisOptions, TestRedis, redis_server_available};
pub use target::{TestTarget, url_of};
pub use wait::{eventually, eventually_async};

/// A loopback address with a port that was free a moment ago.
///
/// # Panics
/// If no port can be bound.
#[must_use]
pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
}

/// A key namespace no other test uses: `t<ulid>`, lowercase.
#[must_use]
pub fn namespace() -> String {
    format!("t{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// The Redis that the machine runs for tests that only need their own namespace:
/// `TEST_REDIS_URL`, or `redis://127.0.0.1:6379`.
#[must_use]
pub fn shared_redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Runs the binary at `bin` once per case, each with only one variable set (plus
/// `PATH`), and asserts that it exits with status 1 and one line of stderr that
/// contains the expected text: a bad configuration stops a process at once and says
/// which variable is at fault.
///
/// # Panics
/// When a case does not behave so.
pub fn assert_config_errors(bin: &str, cases: &[(&str, &str, &str)]) {
    for (var, value, expected) in cases {
        let out = std::process::Command::new(bin)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(var, value)
            .output()
            .unwrap_or_else(|e| panic!("run {bin}: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{var}={value}: {stderr}");
        assert!(stderr.contains(expected), "{var}={value} said: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "one clear line, not a backtrace: {stderr}"
        );
    }
}

/// Asserts that a SIGTERM while `bin` is still connecting to its database stops it at
/// once with exit status 0: it is neither killed by the signal nor left waiting for
/// the database. `env` is what else `bin` needs to get as far as connecting.
///
/// # Panics
/// When it does not stop so.
pub fn assert_sigterm_while_connecting_stops_cleanly(bin: &str, env: &[(&str, String)]) {
    use std::time::Duration;
    // A "database" that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a silent database");
    let db = format!(
        "postgres://postgres@{}/drover",
        silent.local_addr().expect("its address")
    );
    let mut vars = vec![
        ("DATABASE_URL", db),
        ("REDIS_URL", "redis://127.0.0.1:1".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    vars.extend(env.iter().cloned());
    let mut proc = procs::Proc::start_exe(bin, &vars);
    // It is connecting once the database has been dialled.
    let (_conn, _) = silent.accept().expect("the process dials the database");
    // The database's connect timeout is 5 s: stopping within 4 s is not waiting for it.
    let code = proc.terminate(Duration::from_secs(4));
    assert_eq!(code, Some(0), "{bin} after a SIGTERM while connecting");
}
