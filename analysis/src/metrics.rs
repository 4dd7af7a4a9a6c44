//! The analysis throughput, as counters (recorded through the `metrics` facade, so
//! only where the process installs a recorder: the worker does).
//!
//! `rate(drover_analysis_bytes_total[5m])` is the bytes per second the worker's
//! analyses read, the figure the issue's ≥ 100 MB/s per core target is about, and
//! what an operator compares with the calibration that estimates run times.

/// Counter: dataset bytes the analyses read (a resumed attempt counts only what it
/// reads again, from its checkpoint on).
pub const BYTES: &str = "drover_analysis_bytes_total";
/// Counter: dataset rows the analyses scored.
pub const ROWS: &str = "drover_analysis_rows_total";

/// Creates both counters at zero, so that a rate over them is defined from the first
/// scrape.
pub fn zero_series() {
    ::metrics::counter!(BYTES).increment(0);
    ::metrics::counter!(ROWS).increment(0);
}

/// Counts what one step of an analysis read and scored.
pub(crate) fn record(bytes: u64, rows: u64) {
    ::metrics::counter!(BYTES).increment(bytes);
    ::metrics::counter!(ROWS).increment(rows);
}
