//! Which internal caller may call which dispatcher method (enforced by
//! `service_kit::callers`).

/// Platform services publish; the gateway fires test notifications and
/// reads a partner's deliveries; operators use `callbacksctl`.
pub(crate) const ROLES: &[&str] = &["publisher", "gateway", "operator"];

/// The role that may read a delivery without naming its partner.
pub(crate) const OPERATOR: &str = "operator";

pub(crate) fn policy(method: &str) -> &'static [&'static str] {
    match method {
        "Publish" | "PublishBatch" => &["publisher", OPERATOR],
        _ => &["gateway", OPERATOR],
    }
}
