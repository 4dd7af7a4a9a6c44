//! `drover-api`: the HTTP API. Configuration comes from the environment (see `config`).

#[tokio::main]
async fn main() {
    let config =
        match drover_api::config::ApiConfig::from_env(&drover_jobs::env::Env::from_process()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("drover-api: {e}");
                std::process::exit(1);
            }
        };
    let _telemetry = drover_jobs::telemetry::init(&config.common, "drover-api");
    if let Err(e) = drover_api::serve(config, drover_jobs::shutdown::signal()).await {
        tracing::error!(error = format!("{e:#}"), "drover-api stopped");
        eprintln!("drover-api: {e:#}");
        std::process::exit(1);
    }
}
