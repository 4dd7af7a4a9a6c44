//! The work of the `analysis` job kind, as plain code over plain inputs (a path, a
//! byte stream, a database connection), so tests call it without a queue.
//!
//! - [`vader`]: the VADER sentiment scorer (our code over the published lexicon).
//! - [`records`]: CSV records from bytes fed in pieces, with record-aligned offsets.
//! - [`profile`]: per-column profiles from a sample, with a text score.
//! - [`scan`]: what an upload learns while its bytes stream to disk.
//! - [`summary`]: per-column summaries in exact integers.
//! - [`runner`]: the blocking, resumable loop that scores a dataset.
//! - [`store`]: the tables (datasets, runs, checkpoints, summaries).
//! - [`job`]: one attempt of an analysis job, with checkpoints and a lease.
//! - [`calibrate`]: the throughput a fresh install measures at worker start.
//! - [`metrics`]: the analysis throughput, as Prometheus counters.

pub mod calibrate;
pub mod estimate;
pub mod job;
pub mod metrics;
pub mod profile;
pub mod records;
pub mod runner;
pub mod scan;
pub mod store;
pub mod summary;
pub mod vader;
