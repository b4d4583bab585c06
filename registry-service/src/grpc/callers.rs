//! Which internal caller may call which registry method (enforced by
//! `service_kit::callers`).

/// The dispatcher resolves and reports; the gateway serves partners and
/// operators' REST calls; operators use `callbacksctl`.
pub const ROLES: &[&str] = &["dispatcher", "gateway", "operator"];

pub(crate) fn policy(method: &str) -> &'static [&'static str] {
    match method {
        // Decrypted credentials and secrets, and the error state's input.
        "ResolveCallback" | "RecordDeliveryOutcome" | "ListHealthEvents" => &["dispatcher"],
        "ListChanges" => &["dispatcher", "gateway"],
        "ListNotificationTypes" | "GetNotificationType" => &["dispatcher", "gateway", "operator"],
        _ => &["gateway", "operator"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_the_dispatchers_alone() {
        assert_eq!(policy("ResolveCallback"), ["dispatcher"]);
        assert!(!policy("CreatePartner").contains(&"dispatcher"));
        assert!(policy("ListNotificationTypes").contains(&"dispatcher"));
        assert!(policy("UpsertCallback").contains(&"gateway"));
    }
}
