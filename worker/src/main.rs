//! `drover-worker`: runs jobs. Configuration comes from the environment (see `config`).

#[tokio::main]
async fn main() {
    let config =
        match drover_worker::config::WorkerConfig::from_env(&drover_jobs::env::Env::from_process())
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("drover-worker: {e}");
                std::process::exit(1);
            }
        };
    let _telemetry = drover_jobs::telemetry::init(&config.common, "drover-worker");
    if let Err(e) = drover_worker::run(config, drover_jobs::shutdown::signal()).await {
        tracing::error!(error = format!("{e:#}"), "drover-worker stopped");
        eprintln!("drover-worker: {e:#}");
        std::process::exit(1);
    }
}
