//! The reliability suite: promises kept under faults, with full durability.
//! Each test prints its figures; `docs/reliability.md` holds those of the
//! last full run and the command for it. The ordinary suite runs a short
//! version; `RELIABILITY_SCALE` multiplies the load for the long run.

mod dns_rebinding;
mod hostile_endpoints;
mod kill_soak;
mod network_faults;
mod publish_durability;

/// The load multiplier: 1 in the ordinary suite.
pub(crate) fn scale() -> usize {
    std::env::var("RELIABILITY_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}
