//! Drover's durable job queue on Redis.
//!
//! This crate knows queues, jobs and workers, and nothing of what the jobs do. It
//! keeps every promise of the design (`DESIGN.md`, "The queue"):
//!
//! - **at-least-once**: a job leaves `active` only when its handler returns; a worker
//!   holds a renewed lease on each job it runs, and jobs whose lease expires are
//!   rescued back to `waiting` (the attempt counts);
//! - **durable retries**: a failed attempt goes to `delayed` with an exponential,
//!   jittered backoff; nothing sleeps in a worker's memory;
//! - **idempotent submission**, **priorities** (FIFO within one), **pause** enforced
//!   in the fetch script, **atomic, bounded scripts**, **cluster-ready keys**,
//!   **fast wake-up** and **no death on Redis outages**.
//!
//! # Layout
//!
//! - [`keys`]: the Redis key layout of a queue, and its cluster slot.
//! - [`connection`]: the pooled Redis connection with timeouts.
//! - [`options`]: job options (delay, priority, attempts, backoff, idempotency).
//! - [`queue`]: [`Queue`], a handle to enqueue, read and administer one queue.
//! - [`job`]: [`JobRecord`], a job read back, and [`JobState`].
//! - [`events`]: the lifecycle and progress events each queue's stream carries.
//! - [`retention`]: how long finished jobs stay, and the archive they go to first.
//! - [`worker`]: [`worker::DroverBackend`], the apalis backend, and what handlers see.
//! - `lua/`: the scripts; every state change is one of them.

pub mod connection;
mod error;
pub mod events;
pub mod job;
pub mod keys;
pub mod metrics;
pub mod options;
pub mod queue;
pub mod retention;
mod scripts;
pub mod worker;

pub use connection::{Redis, RedisConfig};
pub use error::{QueueError, Result};
pub use events::{Event, EventType};
pub use job::{AttemptError, JobRecord, JobState};
pub use options::{Backoff, BackoffKind, JobOptions, QueueDefaults};
pub use queue::{
    Counts, Enqueued, MinuteStats, MoveOutcome, NewJob, Outcome, Overview, Page, Queue,
    QueueSettings, RemoveOutcome, WorkerInfo,
};
pub use retention::{ArchiveMode, ArchiveSink, JobRetention, Retention};
