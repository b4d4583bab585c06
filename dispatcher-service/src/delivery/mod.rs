//! Delivery: this process's loop that claims due deliveries, attempts them
//! within concurrency limits and writes their outcomes back in batches;
//! and the outbound HTTP client ([`http`]) with its guarded resolver
//! ([`dns`]).
//!
//! ```text
//!  claim_loop ───────────────▶ task (one per delivery) ──────▶ completer
//!   claim from the cursor,      resolve (cached)               outcomes batched into
//!   or sweep behind it          endpoint slot, or park         one fenced write, then
//!   ▲ NOTIFY / poll             attempt, decide what follows   reports to the registry
//!   └ hand-off from this process's publishes (worker)
//! ```
//!
//! One delivery, one name per stage: a [`Claim`] (what the queue handed
//! out) travels as [`InFlight`] to its task with a global slot, as
//! [`Ready`] once it holds one of its endpoint's slots, and leaves as
//! [`Finished`], the [`Outcome`] to write and what to report. A
//! [`Reserved`] slot is taken at publish for a hand-off, before its
//! delivery exists.
//!
//! Isolation: a global semaphore bounds the attempts in flight, and each
//! registration has a few slots of its own and a small parking space
//! ([`endpoints`]), so an endpoint that hangs until its timeout occupies
//! its own slots, never the others'.
//!
//! [`Claim`]: crate::domain::queue::Claim
//! [`Outcome`]: crate::domain::queue::Outcome
//! [`InFlight`]: worker::InFlight
//! [`Ready`]: endpoints::Ready
//! [`Finished`]: completer::Finished
//! [`Reserved`]: worker::Reserved

mod claim_loop;
mod completer;
mod cursor_watch;
pub(crate) mod dns;
mod endpoints;
mod failure;
mod fleet;
pub mod http;
mod task;
mod throttle;
pub mod worker;

/// A uniform draw in `[0, 1)` for retry jitter and spread returns.
fn jitter_draw() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u64_pair().0 >> 11;
    bits as f64 / (1u64 << 53) as f64
}
