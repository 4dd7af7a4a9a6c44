//! `drover`: the operator CLI. With no command it runs `drover up`.

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = drover_ops::cli::Cli::parse();
    let code = drover_ops::run(cli).await;
    std::process::exit(code);
}
