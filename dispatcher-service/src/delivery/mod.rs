//! Delivery: the outbound HTTP client ([`http`]) and the workers that claim
//! due deliveries, attempt them within concurrency limits and write the
//! outcomes back in batches ([`worker`]).

mod completer;
mod failure;
pub mod http;
pub mod worker;
