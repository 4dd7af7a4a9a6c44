//! Drover's domain: what the platform's jobs are, and what every process shares.
//!
//! # Layout
//!
//! - [`queues`]: the four queues ([`QueueName`]) and their retry defaults.
//! - [`kinds`]: one payload type per job kind ([`kinds::ExportPayload`] …), each
//!   validated, and [`kinds::validate_payload`] for callers holding raw JSON.
//! - [`env`]: reading environment variables with errors that name the variable.
//! - [`config`]: the settings every binary shares ([`config::CommonConfig`]).
//! - [`connect`]: Redis, the database (with migrations) and the queue handles.
//! - [`data_dir`]: where files live under the data directory, and their names.
//! - [`telemetry`]: logs (pretty or JSON) and the Prometheus recorder.
//! - [`trace`]: span export over OTLP and the `traceparent` a job carries.
//! - [`probes`]: `/metrics`, `/health` and `/ready` for the processes without an API.
//! - [`shutdown`]: the stop signal (Ctrl-C or SIGTERM).
//! - [`events`]: the event schema, re-exported from the queue.

pub mod config;
pub mod connect;
pub mod data_dir;
pub mod env;
pub mod kinds;
pub mod probes;
pub mod queues;
pub mod shutdown;
pub mod telemetry;
pub mod trace;

/// The lifecycle and progress events of jobs and queues.
pub mod events {
    pub use drover_queue::events::*;
}

pub use queues::QueueName;
