//! `drover-scheduler`: fires the scheduled runs. Configuration comes from the environment.

#[tokio::main]
async fn main() {
    let config = match drover_scheduler::config::SchedulerConfig::from_env(
        &drover_jobs::env::Env::from_process(),
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("drover-scheduler: {e}");
            std::process::exit(1);
        }
    };
    let _telemetry = drover_jobs::telemetry::init(&config.common, "drover-scheduler");
    if let Err(e) = drover_scheduler::run(config, drover_jobs::shutdown::signal()).await {
        tracing::error!(error = format!("{e:#}"), "drover-scheduler stopped");
        eprintln!("drover-scheduler: {e:#}");
        std::process::exit(1);
    }
}
