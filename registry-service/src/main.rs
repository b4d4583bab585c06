//! `registry-service`: parse the settings, start, serve until SIGINT/SIGTERM;
//! or, with `reseal`, move stored secrets to the current key and exit.

use clap::Parser;
use registry_service::config::Command;
use registry_service::{Application, Config};
use service_kit::{shutdown_signal, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = telemetry::init("registry-service", config.log_format)?;
    if let Some(Command::Reseal { batch }) = config.command {
        let report = registry_service::reseal(&config, batch).await?;
        println!(
            "re-sealed {} registrations under the current key; {} left under other keys",
            report.resealed, report.left
        );
        anyhow::ensure!(
            report.left == 0,
            "run reseal again once every replica has the current key"
        );
        return Ok(());
    }
    let app = Application::build(config).await?;
    app.run_until_stopped(shutdown_signal()).await
}
