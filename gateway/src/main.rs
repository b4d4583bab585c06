//! `gateway`: serve the REST API until SIGINT/SIGTERM, or
//! `gateway openapi` to print the OpenAPI document.

use clap::{Parser, Subcommand};
use gateway::{Application, Config};
use service_kit::{shutdown_signal, telemetry};

#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the OpenAPI document and exit.
    Openapi,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        println!("{}", serde_json::to_string_pretty(&gateway::openapi())?);
        return Ok(());
    }
    let _telemetry = telemetry::init("gateway", cli.config.log_format)?;
    let app = Application::build(cli.config).await?;
    app.run_until_stopped(shutdown_signal()).await
}
