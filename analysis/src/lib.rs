//! The work of the `analysis` job kind, as plain code over plain inputs (a path, a
//! byte stream, a database connection), so tests call it without a queue.
//!
//! - [`vader`]: the VADER sentiment scorer (our code over the published lexicon).
pub mod vader;
