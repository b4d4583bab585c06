//! Identifiers. Each wraps its raw value so that a partner id cannot be
//! passed where a registration id is expected, and is parsed once, at the
//! edge.

use std::fmt;

use uuid::Uuid;

use super::FieldViolation;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id (UUIDv7), so that rows inserted together
            /// sit together in the index.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Parses the canonical text form; `field` names the input in the
            /// violation.
            pub fn parse(field: &'static str, raw: &str) -> Result<Self, FieldViolation> {
                if raw.is_empty() {
                    return Err(FieldViolation::new(field, "is required"));
                }
                Uuid::try_parse(raw)
                    .map(Self)
                    .map_err(|_| FieldViolation::new(field, "must be a GUID"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A partner's unique id (the `partnerUniqueID` of the public API).
    PartnerId
);
uuid_id!(
    /// A callback registration's id (`registrationId`).
    RegistrationId
);
uuid_id!(
    /// An API key's id: names a key without revealing it.
    ApiKeyId
);

/// A notification type's id, a positive integer (5, 6, 7 are seeded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NotificationTypeId(i32);

impl NotificationTypeId {
    pub fn parse(field: &'static str, raw: i32) -> Result<Self, FieldViolation> {
        if raw > 0 {
            Ok(Self(raw))
        } else {
            Err(FieldViolation::new(field, "must be a positive integer"))
        }
    }

    /// For values read back from our own database, which only ever holds
    /// positive ids (a CHECK constraint enforces it).
    pub fn from_stored(raw: i32) -> Self {
        Self(raw)
    }

    pub fn get(&self) -> i32 {
        self.0
    }
}

impl fmt::Display for NotificationTypeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_only_guids() {
        assert!(PartnerId::parse("partner_id", "not-a-guid").is_err());
        assert_eq!(
            PartnerId::parse("partner_id", "").unwrap_err().rule,
            "is required"
        );
        let id = PartnerId::generate();
        assert_eq!(PartnerId::parse("partner_id", &id.to_string()), Ok(id));
    }

    #[test]
    fn notification_types_are_positive() {
        assert!(NotificationTypeId::parse("notification_type", 0).is_err());
        assert!(NotificationTypeId::parse("notification_type", -5).is_err());
        assert_eq!(
            NotificationTypeId::parse("notification_type", 5).map(|t| t.get()),
            Ok(5)
        );
    }
}
