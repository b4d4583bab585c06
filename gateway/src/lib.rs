//! The gateway: the partners' public REST API (the contract of the seed
//! documents), translated to the registry's and dispatcher's gRPC APIs. It
//! keeps no state of its own beyond a cache of API-key checks (kept in
//! step with the registry's changes),
//! so replicas scale behind any load balancer.
//!
//! [`routes`] holds the handlers with their OpenAPI descriptions; [`dto`]
//! the JSON shapes; [`auth`] who may call what; [`problem`] every error as
//! an RFC 9457 document and the one gRPC → HTTP status mapping;
//! [`request_id`] the `X-Request-Id` of every response; [`observe`] the
//! span and metrics of every request; [`limits`] what one caller may take
//! (rates per partner, requests in progress, deadlines); [`server`] the
//! HTTP server with its connection limits.

mod app;
mod auth;
pub mod config;
mod dto;
mod key_cache;
mod limits;
mod observe;
mod portal;
mod problem;
mod reference;
mod request_id;
mod routes;
mod schemas;
mod server;
mod state;

pub use app::Application;
pub use config::Config;
pub use problem::ApiError;
pub use routes::echo::check_raw_body;
pub use routes::openapi;
