//! The `drover` operator CLI.
//!
//! # Layout
//!
//! - [`cli`]: the command line.
//! - [`up`]: `drover up`, the whole local stack in one process.
//! - [`bench`]: `drover bench …`.
//! - [`embedded_redis`]: the `redis-server` child `drover up` starts when it needs one.
//! - [`keys`]: `drover keys create | list | revoke`, and the development admin key.

pub mod bench;
pub mod cli;
pub mod embedded_redis;
pub mod keys;
pub mod up;

use drover_jobs::config::CommonConfig;
use drover_jobs::env::Env;

use crate::cli::{Bench, Cli, Command};

/// Runs a command; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let env = Env::from_process();
    let result = match cli.command.unwrap_or(Command::Up) {
        Command::Up => up::run(&env).await,
        Command::Migrate => migrate(&env).await,
        Command::Bench(Bench::Queue(args)) => bench::queue::run(args).await,
        Command::Bench(Bench::Retention(args)) => bench::retention::run(args).await,
        Command::Bench(Bench::Export(args)) => bench::export::run(args).await,
        Command::Bench(Bench::Analysis(args)) => bench::analysis::run(args).await,
        Command::Bench(Bench::Ui(args)) => bench::ui::run(args).await,
        Command::Keys { command } => keys::run(&env, command).await,
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("drover: {e:#}");
            1
        }
    }
}

async fn migrate(env: &Env) -> anyhow::Result<()> {
    let config = CommonConfig::from_env(env)?;
    drover_jobs::telemetry::init_tracing(config.log_format, &config.log_filter);
    let db = drover_jobs::connect::database(&config.database_url).await?;
    let pending = {
        use drover_migration::MigratorTrait;
        drover_migration::Migrator::get_pending_migrations(&db)
            .await?
            .len()
    };
    drover_jobs::connect::migrate(&db).await?;
    println!(
        "applied {pending} migration(s) to {}",
        drover_jobs::connect::redact_db(&config.database_url)
    );
    Ok(())
}
