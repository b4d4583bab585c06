//! The registry service: owns partners, their API keys, the
//! notification-type catalogue and callback registrations with their error
//! state, in its own Postgres database, behind the `callbacks.registry.v1`
//! gRPC API. Nothing else writes its tables; the gateway and the dispatcher
//! ask it over gRPC.
//!
//! Layers, outside in: [`grpc`] parses wire messages into [`domain`] values
//! and maps errors to statuses; [`service`] runs each use case; [`storage`]
//! holds the diesel-async queries; [`crypto`] seals secrets at rest.

pub mod app;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod grpc;
pub mod service;
pub mod storage;

pub use app::{Application, shutdown_signal};
pub use config::{Config, LogFormat};

/// Installs the global log subscriber: `RUST_LOG` filters (default `info`),
/// `format` picks human or JSON lines.
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,h2=warn,hyper=warn,tower=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
