//! Drover's durable job queue on Redis.
//!
//! This crate knows queues, jobs and workers, and nothing of what the jobs do. It
//! keeps these promises (see `docs/ARCHITECTURE.md`):
//!
//! - **at-least-once**: a job leaves `active` only when its handler returns; a worker
//!   holds a renewed lease on each job it runs, and jobs whose lease expires are
//!   rescued back to `waiting`. An attempt counts when its handler starts, not when
//!   the lease is taken, so a lost fetch reply costs nothing; a handler hears that
//!   its lease is lost through [`worker::JobContext::lease_lost`];
//! - **durable retries**: a failed attempt goes to `delayed` with an exponential,
//!   jittered backoff; nothing sleeps in a worker's memory;
//! - **idempotent submission**, **priorities** (FIFO within one), **pause** enforced
//!   in the fetch script, **atomic, bounded scripts**, **cluster-ready keys**,
//!   **fast wake-up** and **no death on Redis outages**.
//!
//! # Layout
//!
//! - [`keys`]: the Redis key layout of a queue, and its cluster slot.
//! - [`connection`]: Redis connections (a control lane for workers, general lanes
//!   for the rest), with timeouts.
//! - [`options`]: job options (delay, priority, attempts, backoff, idempotency).
//! - [`queue`]: [`Queue`], a handle to enqueue, read and administer one queue.
//! - [`job`]: [`JobRecord`], a job read back, and [`JobState`].
//! - [`events`]: the lifecycle and progress events each queue's stream carries.
//! - [`flow`]: flow control across all workers: rate limit, `max_active`, rate pause.
//! - [`reconnect`]: the one backoff of every loop that outlives a Redis outage.
//! - [`retention`]: how long finished jobs stay, and the archive they go to first.
//! - [`worker`]: [`worker::DroverBackend`], the apalis backend, and what handlers see.
//! - `lua/`: the scripts; every state change is one of them.

pub mod connection;
mod error;
pub mod events;
pub mod flow;
pub mod job;
pub mod keys;
pub mod metrics;
pub mod options;
pub mod queue;
pub mod reconnect;
pub mod retention;
mod scripts;
pub mod trace;
pub mod worker;

pub use connection::{Conn, Redis, RedisConfig, Target, Traffic};
pub use error::{QueueError, Result};
pub use events::{Event, EventType};
pub use flow::{FlowLimits, FlowPatch, FlowStatus, RateLimit};
pub use job::{AttemptError, JobRecord, JobState};
pub use options::{Backoff, BackoffKind, JobOptions, QueueDefaults};
pub use queue::{
    Counts, Enqueued, HistoryStart, MinuteStats, MoveOutcome, NewJob, Outcome, Overview, Page,
    Queue, QueueSettings, RemoveOutcome, WorkerInfo,
};
pub use reconnect::reconnect_delay;
pub use retention::{ArchiveMode, ArchiveSink, JobRetention, Retention};
