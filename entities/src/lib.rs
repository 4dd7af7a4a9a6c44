//! Drover's durable records, as sea-orm entities. The schema is the migrations'
//! (`drover-migration`); these mirror it.
//!
//! # Layout
//!
//! - [`analysis_checkpoint`], [`analysis_run`], [`analysis_summary`]: analyses of datasets.
//! - [`api_key`]: API keys, stored hashed, each with a role.
//! - [`dataset`]: uploaded CSV datasets and their profiles.
//! - [`job_history`]: finished jobs archived out of Redis.

pub mod analysis_checkpoint;
pub mod analysis_run;
pub mod analysis_summary;
pub mod api_key;
pub mod dataset;
pub mod job_history;
