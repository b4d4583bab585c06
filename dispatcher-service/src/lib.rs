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

pub mod app;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod grpc;
pub mod registry;
pub mod service;
pub mod storage;

pub use app::Application;
pub use config::Config;
