//! Delivery: the outbound HTTP client ([`http`]) with its guarded resolver
//! ([`dns`]), and the workers that claim due deliveries, attempt them
//! within concurrency limits and write the outcomes back in batches
//! ([`worker`]).

mod completer;
pub mod dns;
mod failure;
pub mod http;
pub mod worker;
