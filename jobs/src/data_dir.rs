//! The layout of the data directory, shared by the processes that write files (the
//! worker) and those that serve or remove them (the API, the cleanup job).
//!
//! | path | holds |
//! |---|---|
//! | `<data dir>/tmp/` | files being written, each named `<kind>.<id>.<attempt>.part`; renamed into place when complete |
//! | `<data dir>/exports/` | finished export files, each named by [`export_file_name`] |
//!
//! A file name that goes into the database is a bare name made here, never a path and
//! never anything a request sent; readers check it with [`is_plain_file_name`] before
//! joining it to its directory.

use std::path::{Path, PathBuf};

/// Where partially written files live.
#[must_use]
pub fn tmp_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tmp")
}

/// Where finished export files live.
#[must_use]
pub fn exports_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("exports")
}

/// The suffix every temporary file carries.
pub const PART_SUFFIX: &str = ".part";

/// The temporary file of one attempt of export job `job_id`.
#[must_use]
pub fn export_part_name(job_id: &str, attempt: u32) -> String {
    format!("export.{job_id}.{attempt}{PART_SUFFIX}")
}

/// The prefix of every temporary file of export job `job_id`, whatever the attempt.
#[must_use]
pub fn export_part_prefix(job_id: &str) -> String {
    format!("export.{job_id}.")
}

/// The file extension of an export: `csv`, `jsonl`, with `.gz` when compressed.
#[must_use]
pub fn export_extension(format: &str, gzip: bool) -> String {
    if gzip {
        format!("{format}.gz")
    } else {
        format.to_owned()
    }
}

/// The finished file of the attempt `attempt` of export job `job_id`. The attempt is in
/// the name so two attempts of one job never rename onto one file.
#[must_use]
pub fn export_file_name(job_id: &str, attempt: u32, format: &str, gzip: bool) -> String {
    format!(
        "export-{job_id}-{attempt}.{}",
        export_extension(format, gzip)
    )
}

/// Whether `name` is a bare file name of ours: 1 to 128 of `A-Z a-z 0-9 . _ -`, not
/// starting with a dot. Nothing that passes can climb out of its directory.
#[must_use]
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain() {
        let n = export_file_name("01JD4X8Q7W3K9N2M5P6R8T0V1Y", 2, "csv", true);
        assert_eq!(n, "export-01JD4X8Q7W3K9N2M5P6R8T0V1Y-2.csv.gz");
        assert!(is_plain_file_name(&n));
        assert!(is_plain_file_name(&export_part_name("01JD", 1)));
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            "/etc/passwd",
            ".hidden",
            "a\0b",
            "a\\b",
            "%2e%2e",
        ] {
            assert!(!is_plain_file_name(bad), "{bad:?} accepted");
        }
    }
}
