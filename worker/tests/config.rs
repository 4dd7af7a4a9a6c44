//! A bad configuration stops `drover-worker` at once: exit status 1 and one line naming the variable.
//! A stop while it connects is a stop: exit status 0, at once.

#[test]
fn a_bad_value_exits_1_with_one_line_naming_the_variable() {
    drover_tests::assert_config_errors(
        env!("CARGO_BIN_EXE_drover-worker"),
        &[
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
        ],
    );
}

/// A SIGTERM while it is still connecting to its database stops it at once, with exit
/// code 0, instead of killing it or waiting for the database's connect timeout.
#[test]
fn a_sigterm_while_connecting_stops_it_cleanly() {
    drover_tests::assert_sigterm_while_connecting_stops_cleanly(
        env!("CARGO_BIN_EXE_drover-worker"),
        &[],
    );
}
