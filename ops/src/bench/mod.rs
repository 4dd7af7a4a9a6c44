//! `drover bench …`: benchmarks that print their figures as one JSON line.

pub mod analysis;
pub mod export;
pub mod queue;
pub mod retention;
pub mod shards;
pub mod support;
pub mod ui;
