//! The errors of the registry, as meanings. The gRPC layer maps each variant
//! to one status code (`grpc/status.rs`); storage maps constraint violations
//! into them by constraint name.

pub use service_kit::validation::{FieldViolation, Invalid, Violations, describe};

use super::{ApiKeyId, NotificationTypeId, PartnerId, RegistrationId};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The caller's input broke one or more rules.
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("partner {0} does not exist")]
    PartnerNotFound(PartnerId),
    /// The partner exists but is disabled: it may not act.
    #[error("partner {0} is disabled")]
    PartnerDisabled(PartnerId),
    /// No such key, or not this partner's.
    #[error("API key {key} does not exist for partner {partner}")]
    ApiKeyNotFound { partner: PartnerId, key: ApiKeyId },
    #[error("partner {partner} has no active callback for notification type {notification_type}")]
    NoActiveRegistration {
        partner: PartnerId,
        notification_type: NotificationTypeId,
    },
    #[error(
        "the callback of partner {partner} for notification type {notification_type} is already paused (since {since})"
    )]
    AlreadyPaused {
        partner: PartnerId,
        notification_type: NotificationTypeId,
        since: chrono::DateTime<chrono::Utc>,
    },
    #[error(
        "the callback of partner {partner} for notification type {notification_type} is not paused"
    )]
    NotPaused {
        partner: PartnerId,
        notification_type: NotificationTypeId,
    },
    #[error(
        "{count} previous signing keys are still valid, the most there may be; the next one expires at {next_expiry}: rotate again after it, or rotate with previous_expires_in_seconds = 0"
    )]
    TooManyPreviousKeys {
        count: usize,
        next_expiry: chrono::DateTime<chrono::Utc>,
    },
    #[error("registration {0} does not exist")]
    RegistrationNotFound(RegistrationId),
    #[error("notification type {0} does not exist")]
    NotificationTypeNotFound(NotificationTypeId),
    #[error("notification type {0} already exists")]
    NotificationTypeExists(NotificationTypeId),
    #[error("a notification type named {0:?} already exists")]
    NotificationTypeNameTaken(String),
    /// A row the operation expected was not there (a concurrent delete).
    #[error("not found")]
    Vanished,
    /// An unknown, revoked or malformed API key.
    #[error("invalid API key")]
    Unauthenticated,
    /// Our fault, not the caller's. The source chain is logged at the edge and
    /// never sent to the caller.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl RegistryError {
    pub fn invalid(field: &'static str, rule: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, rule)])
    }

    pub fn internal(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(source.into())
    }
}

impl From<FieldViolation> for RegistryError {
    fn from(violation: FieldViolation) -> Self {
        Self::InvalidArgument(vec![violation])
    }
}

impl From<Invalid> for RegistryError {
    fn from(invalid: Invalid) -> Self {
        Self::InvalidArgument(invalid.0)
    }
}
