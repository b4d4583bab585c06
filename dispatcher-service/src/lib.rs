//! The dispatcher service: accepts events from platform services over gRPC
//! (`callbacks.dispatcher.v1`), commits each before answering, and delivers
//! it to the partner's registered callback URL over HTTPS, with Standard
//! Webhooks signatures, retries on a schedule, and error-state reports to
//! the registry. Several replicas share one Postgres queue.
//!
//! Layers: [`grpc`] parses requests; [`service`] runs the use cases;
//! [`storage`] is the event log and the queue; [`delivery`] claims, attempts
//! and completes; [`registry`] caches what the registry says and reports
//! outcomes; [`domain`] holds the rules (retry policy, classification,
//! signing).

//!
//! The library's surface is what the binary, the tests, the fuzz targets
//! and the bench use: the application and its configuration, the domain
//! rules, and the queue's parts (storage, delivery, the registry client)
//! that the queue's tests drive statement by statement. The gRPC edge and
//! the use cases are private.

mod app;
pub mod config;
pub mod delivery;
pub mod domain;
mod grpc;
mod metrics_help;
pub mod registry;
mod service;
pub mod storage;

pub use app::Application;
pub use config::Config;
