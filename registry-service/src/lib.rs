//! The registry service: owns partners, their API keys, the
//! notification-type catalogue and callback registrations with their error
//! state, in its own Postgres database, behind the `callbacks.registry.v1`
//! gRPC API. Nothing else writes its tables; the gateway and the dispatcher
//! ask it over gRPC.
//!
//! Layers, outside in: [`grpc`] parses wire messages into [`domain`] values
//! and maps errors to statuses; [`service`] runs each use case; [`storage`]
//! holds the diesel-async queries; [`crypto`] seals secrets at rest.

//!
//! The library's surface is what the binary, the tests and the fuzz
//! targets use: the application and its configuration, the domain values,
//! the secrets' cipher and the diesel schema (checked against the
//! migrations). The gRPC edge and the use cases are private.

mod app;
pub mod config;
mod crypto;
pub mod domain;
mod grpc;
mod metrics_help;
mod service;
pub mod storage;

pub use app::{Application, reseal};
pub use config::Config;
pub use crypto::Cipher;
pub use grpc::callers::ROLES as CALLER_ROLES;
