//! The command line.

use clap::{Parser, Subcommand};

use crate::keys::KeysCommand;

/// Drover: durable job queues.
#[derive(Debug, Parser)]
#[command(name = "drover", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole stack locally: API, worker and scheduler in one process, and a
    /// Redis of its own when none answers at REDIS_URL (the default when no command is given).
    Up,
    /// Apply the database migrations to DATABASE_URL.
    Migrate,
    /// Manage API keys (stored hashed in the database at DATABASE_URL).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Measure Drover's speed (figures as one JSON line).
    #[command(subcommand)]
    Bench(Bench),
}

/// What to measure.
#[derive(Debug, Subcommand)]
pub enum Bench {
    /// Enqueue, process, latency and retry throughput of the queue against REDIS_URL.
    Queue(crate::bench::queue::QueueBench),
    /// A soak of no-op jobs with the default retention: Redis memory over time and
    /// archive rows/s.
    Retention(crate::bench::retention::RetentionBench),
    /// One export of archived jobs through a real drover-worker: rows/s and its RSS.
    Export(crate::bench::export::ExportBench),
    /// Upload and sentiment analysis of a generated CSV through the real API and worker.
    Analysis(crate::bench::analysis::AnalysisBench),
    /// Server time of the dashboard's overview with a million jobs in Redis, and the
    /// bytes of its first view.
    Ui(crate::bench::ui::UiBench),
}
