//! The errors of the registry, as meanings. The gRPC layer maps each variant
//! to one status code (`grpc/status.rs`); storage maps constraint violations
//! into them by constraint name.

pub use service_kit::validation::{FieldViolation, Invalid, Violations, describe};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The caller's input broke one or more rules.
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The named thing does not exist (or is not the caller's).
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but the state forbids it (e.g. a disabled partner).
    #[error("{0}")]
    FailedPrecondition(String),
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
