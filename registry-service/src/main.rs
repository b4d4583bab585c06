//! `registry-service`: parse the settings, start, serve until SIGINT/SIGTERM.

use clap::Parser;
use registry_service::{Application, Config};
use service_kit::{shutdown_signal, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = telemetry::init("registry-service", config.log_format)?;
    let app = Application::build(config).await?;
    app.run_until_stopped(shutdown_signal()).await
}
