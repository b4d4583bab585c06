//! `callbacksctl`: what operators do by hand, over the services' gRPC APIs.
//! Tables by default, JSON with `--json`. See `callbacksctl --help`.

mod commands;
mod connect;
mod output;
mod receive;
mod tables;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "callbacksctl",
    version,
    about = "Operate Partner Callbacks: partners, keys, error states, deliveries, test events."
)]
pub struct Cli {
    /// The registry's gRPC endpoint.
    #[arg(
        long,
        global = true,
        env = "CALLBACKSCTL_REGISTRY_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub registry: String,
    /// The dispatcher's gRPC endpoint.
    #[arg(
        long,
        global = true,
        env = "CALLBACKSCTL_DISPATCHER_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub dispatcher: String,
    /// The operator's token for the registry (an `operator=` entry in
    /// `REGISTRY_CALLERS`).
    #[arg(
        long,
        global = true,
        env = "CALLBACKSCTL_REGISTRY_TOKEN",
        hide_env_values = true
    )]
    pub registry_token: Option<String>,
    /// The operator's token for the dispatcher (an `operator=` entry in
    /// `DISPATCHER_CALLERS`).
    #[arg(
        long,
        global = true,
        env = "CALLBACKSCTL_DISPATCHER_TOKEN",
        hide_env_values = true
    )]
    pub dispatcher_token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Partners: create (with a first API key), list, show, disable.
    #[command(subcommand)]
    Partner(PartnerCommand),
    /// A partner's API keys: issue, list, revoke.
    #[command(subcommand)]
    Key(KeyCommand),
    /// The notification-type catalogue.
    #[command(subcommand)]
    Types(TypesCommand),
    /// A partner's callback registrations.
    Callbacks {
        partner: String,
        /// Only active (true) or deactivated (false) ones.
        #[arg(long)]
        active: Option<bool>,
    },
    /// Pause a partner's registration: its events are kept and its
    /// deliveries wait until it is resumed.
    Pause {
        partner: String,
        notification_type: i32,
        /// Why, shown with the registration.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Resume a paused registration: its waiting deliveries flow again.
    Resume {
        partner: String,
        notification_type: i32,
    },
    /// Registrations in error state, across partners, longest failing first.
    Errors {
        #[arg(long, default_value_t = 1)]
        page: u32,
        #[arg(long, default_value_t = 50)]
        page_size: u32,
    },
    /// Deliveries: show one with its attempts, or list a partner's.
    #[command(subcommand)]
    Delivery(DeliveryCommand),
    /// Schedule a delivered, failed or cancelled delivery again.
    Redeliver { delivery: String },
    /// Send a partner's failed deliveries of a time range again, each as a
    /// new series, in a job that runs at a pace; `--dry-run` first says how
    /// many and from when to when.
    Recover {
        partner: String,
        /// Events published at or after this moment (RFC 3339)…
        #[arg(long)]
        since: chrono::DateTime<chrono::Utc>,
        /// …and before this one (at most 90 days later).
        #[arg(long)]
        until: chrono::DateTime<chrono::Utc>,
        /// One notification type only.
        #[arg(long = "type")]
        notification_type: Option<i32>,
        /// Cancelled deliveries too.
        #[arg(long)]
        include_cancelled: bool,
        /// Only say what would be sent.
        #[arg(long)]
        dry_run: bool,
    },
    /// A recovery's progress.
    Recovery { recovery: String },
    /// Remove one event's payload (its delivery and attempts stay; a
    /// pending delivery is cancelled).
    EraseEvent { event: String },
    /// Remove every payload of a partner.
    ErasePayloads { partner: String },
    /// Publish an event as a platform service would.
    Publish {
        partner: String,
        notification_type: i32,
        /// The JSON payload, delivered byte for byte.
        payload: String,
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Deliveries with the same key to the same registration are made
        /// one at a time, in publish order.
        #[arg(long)]
        ordering_key: Option<String>,
    },
    /// Run a local webhook endpoint that prints every delivery it gets.
    Receive {
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
        /// The registration's signing secret (whsec_…), to verify signatures.
        #[arg(long, env = "CALLBACKSCTL_RECEIVE_SECRET")]
        secret: Option<String>,
        /// The status to answer with.
        #[arg(long, default_value_t = 204)]
        status: u16,
    },
}

#[derive(Debug, Subcommand)]
pub enum PartnerCommand {
    Create {
        name: String,
        #[arg(long, default_value = "")]
        key_label: String,
    },
    List {
        #[arg(long, default_value_t = 1)]
        page: u32,
        #[arg(long, default_value_t = 50)]
        page_size: u32,
    },
    Show {
        partner: String,
    },
    Disable {
        partner: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    Issue {
        partner: String,
        #[arg(long, default_value = "")]
        label: String,
    },
    List {
        partner: String,
        /// Revoked keys too.
        #[arg(long)]
        all: bool,
    },
    Revoke {
        partner: String,
        key: String,
    },
    /// A portal link for the partner: it opens the partner portal (and
    /// nothing else) until it expires; revoke it like a key.
    PortalLink {
        partner: String,
        /// How long it works (60 s to a day).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        expires: std::time::Duration,
        /// The gateway's address, to print the whole link.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        gateway: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TypesCommand {
    List,
    Add {
        id: i32,
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long)]
        echoable: bool,
        /// A file holding the JSON Schema its payloads must satisfy (`-`: standard input).
        #[arg(long)]
        schema_file: Option<PathBuf>,
    },
    /// Set the JSON Schema a type's payloads must satisfy, or remove it.
    Schema {
        id: i32,
        /// The schema's file (`-`: standard input).
        #[arg(required_unless_present = "clear", conflicts_with = "clear")]
        file: Option<PathBuf>,
        /// Remove the schema: any JSON payload is accepted.
        #[arg(long)]
        clear: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeliveryCommand {
    Show {
        delivery: String,
    },
    List {
        partner: String,
        #[arg(long = "type")]
        notification_type: Option<i32>,
        /// pending, delivered, failed or cancelled.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: u32,
        #[arg(long, default_value_t = 50)]
        page_size: u32,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(error) = commands::run(cli).await {
        eprintln!("callbacksctl: {error:#}");
        std::process::exit(1);
    }
}
