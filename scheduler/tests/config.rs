//! A bad configuration stops `drover-scheduler` at once: exit status 1 and one line naming the variable.
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

use std::process::Command;

fn run(var: &str, value: &str) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_drover-scheduler"))
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
            "DROVER_SCHEDULER_TICK_MS",
            "soon",
            r#"DROVER_SCHEDULER_TICK_MS: invalid number "soon""#,
        ),
        (
            "DROVER_ENV",
            "staging",
            r#"DROVER_ENV: invalid value "staging""#,
        ),
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
