//! One function per command: call the service, describe the answer as a
//! table. gRPC errors are shown as the service phrased them.

mod dispatcher;
mod registry;

use callbacks_proto::dispatcher::v1::dispatcher_service_client::DispatcherServiceClient;
use callbacks_proto::registry::v1::registry_service_client::RegistryServiceClient;

use crate::connect::connect;
use crate::{Cli, Command};
use dispatcher::dispatcher_command;
use registry::registry_command;

/// A gRPC failure as the caller should read it.
fn status(e: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", e.code(), e.message())
}

/// A file's text, or standard input's for `-`.
fn read_input(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context as _;
    if path == std::path::Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("cannot read standard input")
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.json;
    match cli.command {
        Command::Receive {
            listen,
            secret,
            status,
        } => return crate::receive::run(listen, secret, status).await,
        Command::Partner(_)
        | Command::Key(_)
        | Command::Types(_)
        | Command::Callbacks { .. }
        | Command::Pause { .. }
        | Command::Resume { .. }
        | Command::Errors { .. } => {
            let channel = connect(&cli.registry, cli.registry_token.as_deref()).await?;
            let mut registry = RegistryServiceClient::new(channel);
            registry_command(&mut registry, cli.command)
                .await?
                .print(json);
        }
        Command::Delivery(_)
        | Command::Redeliver { .. }
        | Command::Recover { .. }
        | Command::Recovery { .. }
        | Command::EraseEvent { .. }
        | Command::ErasePayloads { .. }
        | Command::Publish { .. } => {
            let channel = connect(&cli.dispatcher, cli.dispatcher_token.as_deref()).await?;
            let mut dispatcher = DispatcherServiceClient::new(channel);
            dispatcher_command(&mut dispatcher, cli.command, json).await?;
        }
    }
    Ok(())
}
