//! A bad configuration stops `drover` at once: exit status 1 and one line naming the variable.

#[test]
fn a_bad_value_exits_1_with_one_line_naming_the_variable() {
    drover_tests::assert_config_errors(
        env!("CARGO_BIN_EXE_drover"),
        &[
            (
                "DROVER_ENV",
                "staging",
                r#"DROVER_ENV: invalid value "staging""#,
            ),
            (
                "DROVER_API_ADDR",
                "nowhere",
                r#"DROVER_API_ADDR: invalid socket address "nowhere""#,
            ),
        ],
    );
}
