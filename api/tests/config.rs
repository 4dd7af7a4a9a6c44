//! A bad configuration stops `drover-api` at once: exit status 1 and one line naming the variable.

#[test]
fn a_bad_value_exits_1_with_one_line_naming_the_variable() {
    drover_tests::assert_config_errors(
        env!("CARGO_BIN_EXE_drover-api"),
        &[
            (
                "DROVER_API_ADDR",
                "x",
                r#"DROVER_API_ADDR: invalid socket address "x""#,
            ),
            ("REDIS_URL", "http://nope", "REDIS_URL: invalid Redis URL"),
            (
                "DATABASE_URL",
                "mysql://db",
                "DATABASE_URL: unsupported database URL",
            ),
            (
                "DROVER_API_KEYS",
                "root:0123456789abcdef",
                "DROVER_API_KEYS: entry 1: unknown role",
            ),
        ],
    );
}

/// A SIGTERM while the API is still connecting to its database stops it at once, with
/// exit code 0: it is neither killed by the signal nor left waiting for the database.
#[test]
fn a_sigterm_while_connecting_stops_it_cleanly() {
    drover_tests::assert_sigterm_while_connecting_stops_cleanly(
        env!("CARGO_BIN_EXE_drover-api"),
        &[("DROVER_API_ADDR", drover_tests::free_addr().to_string())],
    );
}
