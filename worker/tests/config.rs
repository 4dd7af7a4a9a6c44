//! A bad configuration stops `drover-worker` at once: exit status 1 and one line naming the variable.
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

use std::process::Command;

fn run(var: &str, value: &str) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_drover-worker"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(var, value)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_value_exits_1_with_one_line_naming_the_variable() {
    for (var, value, expected) in [
        (
            "DROVER_WORKER_CONCURRENCY",
            "lots",
            "DROVER_WORKER_CONCURRENCY: invalid concurrency",
        ),
        (
            "DROVER_WORKER_QUEUES",
            "mail",
            "DROVER_WORKER_QUEUES: unknown queue",
        ),
        ("DROVER_LEASE_MS", "5", "DROVER_LEASE_MS: 5 is out of range"),
    ] {
        let (code, stderr) = run(var, value);
        assert_eq!(code, Some(1), "{var}={value}: {stderr}");
        assert!(stderr.contains(expected), "{var}={value} said: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "one clear line, not a backtrace: {stderr}"
        );
    }
}
