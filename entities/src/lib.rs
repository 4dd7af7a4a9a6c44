//! Drover's durable records, as sea-orm entities. The schema is the migrations'
//! (`drover-migration`); these mirror it.
//!
//! # Layout
//!
//! - [`aggregate`]: hourly and daily aggregates of the queues' counters.
//! - [`analysis_checkpoint`], [`analysis_run`], [`analysis_summary`]: analyses of datasets.
//! - [`analysis_calibration`]: each machine's start-up measure of the analysis throughput.
//! - [`api_key`]: API keys, stored hashed, each with a role.
//! - [`dataset`]: uploaded CSV datasets and their profiles.
//! - [`export`]: export files made by export jobs.
//! - [`job_history`]: finished jobs archived out of Redis.
//! - [`schedule`]: cron schedules.
//! - [`schedule_fire`]: each fire of a schedule, enqueued or skipped.

pub mod aggregate;
pub mod analysis_calibration;
pub mod analysis_checkpoint;
pub mod analysis_run;
pub mod analysis_summary;
pub mod api_key;
pub mod dataset;
pub mod export;
pub mod job_history;
pub mod schedule;
pub mod schedule_fire;
