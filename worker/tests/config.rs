//! A bad configuration stops `drover-worker` at once: exit status 1 and one line naming the variable.

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
