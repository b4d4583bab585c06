//! The dispatcher's errors, as meanings; `grpc/status.rs` maps each to one
//! status code.

pub use service_kit::validation::{FieldViolation, Invalid, Violations};

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("invalid argument: {}", service_kit::validation::describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("delivery {0} does not exist")]
    DeliveryNotFound(uuid::Uuid),
    #[error("partner {partner} has no active callback for notification type {notification_type}")]
    NoActiveRegistration {
        partner: uuid::Uuid,
        notification_type: i32,
    },
    /// A redelivery of a delivery whose series is still under way.
    #[error("delivery {0} is still pending; it will be attempted on schedule")]
    StillPending(uuid::Uuid),
    /// Two redeliveries of one delivery at once: the other one won.
    #[error("delivery {0} was redelivered concurrently")]
    RedeliveredConcurrently(uuid::Uuid),
    #[error("recovery {0} does not exist")]
    RecoveryNotFound(uuid::Uuid),
    #[error("event {0} does not exist")]
    EventNotFound(uuid::Uuid),
    /// A redelivery of a delivery whose event's payload was erased.
    #[error("the payload of event {0} was erased; there is nothing to deliver")]
    PayloadErased(uuid::Uuid),
    /// A backend we depend on (the registry) did not answer.
    #[error("{0}")]
    Unavailable(String),
    /// A write may or may not have taken effect, and could not be found
    /// out in time: the caller must not take it for either.
    #[error("{0}")]
    OutcomeUnknown(String),
    /// Our fault; logged at the edge, opaque to the caller.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl DispatchError {
    pub fn invalid(field: &'static str, rule: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, rule)])
    }

    pub fn internal(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(source.into())
    }
}

impl From<FieldViolation> for DispatchError {
    fn from(violation: FieldViolation) -> Self {
        Self::InvalidArgument(vec![violation])
    }
}

impl From<Invalid> for DispatchError {
    fn from(invalid: Invalid) -> Self {
        Self::InvalidArgument(invalid.0)
    }
}
