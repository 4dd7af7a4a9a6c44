//! Drover's durable records, as sea-orm entities. The schema is the migrations'
//! (`drover-migration`); these mirror it.
//!
//! # Layout
//!
//! - [`api_key`]: API keys, stored hashed, each with a role.
//! - [`job_history`]: finished jobs archived out of Redis.
//! - [`schedule`]: cron schedules.
//! - [`schedule_fire`]: each fire of a schedule, enqueued or skipped.

pub mod api_key;
pub mod job_history;
pub mod schedule;
pub mod schedule_fire;
