//! `drover bench …`: benchmarks that print their figures as one JSON line.

pub mod queue;
pub mod ui;
