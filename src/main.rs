//! The `mediastore` binary: parse the configuration, start logging, open
//! the storage, bind, serve until SIGTERM/SIGINT.

use std::process::ExitCode;

use clap::Parser;
use mediastore::{
    config::{Cli, Command},
    server, telemetry,
};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = cli.config;
    if let Err(e) = config.validate() {
        eprintln!("mediastore: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = telemetry::init(config.log_format, &config.log) {
        eprintln!("mediastore: {e}");
        return ExitCode::from(2);
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => match serve(config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "mediastore stopped on an error");
                ExitCode::FAILURE
            }
        },
    }
}

async fn serve(
    config: mediastore::config::Config,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let library = server::open_library(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        data_dir = %config.data_dir.display(),
        "mediastore serving"
    );
    server::run(listener, &config, library, server::shutdown_signal()).await
}
