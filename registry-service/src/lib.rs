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

pub use app::Application;
pub use config::Config;
