//! `dispatcher-service`: parse the settings, start, serve and deliver until
//! SIGINT/SIGTERM.

use clap::Parser;
use dispatcher_service::{Application, Config};
use service_kit::{init_logging, shutdown_signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    init_logging(config.log_format);
    let app = Application::build(config).await?;
    app.run_until_stopped(shutdown_signal()).await
}
