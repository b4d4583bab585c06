//! `dispatcher-service`: parse the settings, start, serve and deliver until
//! SIGINT/SIGTERM.

use clap::Parser;
use dispatcher_service::{Application, Config};
use service_kit::{shutdown_signal, telemetry};

/// glibc's malloc (with its consolidation passes) takes about a fifth of the
/// dispatcher's CPU under load, for the many small, short-lived buffers of
/// each attempt.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = telemetry::init("dispatcher-service", config.log_format)?;
    let app = Application::build(config).await?;
    app.run_until_stopped(shutdown_signal()).await
}
