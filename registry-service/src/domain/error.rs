//! The errors of the registry, as meanings. The gRPC layer maps each variant
//! to one status code (`grpc/status.rs`); storage maps constraint violations
//! into them by constraint name.

use std::fmt;

/// One broken rule on one input field, reported to the caller as is: it
/// names the field and the rule, never an internal detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: &'static str,
    pub rule: String,
}

impl FieldViolation {
    pub fn new(field: &'static str, rule: impl Into<String>) -> Self {
        Self {
            field,
            rule: rule.into(),
        }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The caller's input broke one or more rules.
    #[error("invalid argument: {}", join(.0))]
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

fn join(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Collects the violations of several fields so that a caller hears about all
/// of them at once, not one per round trip.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Keeps the value when it parsed, records the violation when it did not.
    pub fn check<T>(&mut self, result: Result<T, FieldViolation>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(violation) => {
                self.0.push(violation);
                None
            }
        }
    }

    pub fn push(&mut self, violation: FieldViolation) {
        self.0.push(violation);
    }

    /// `Ok(())` when nothing was recorded.
    pub fn finish(self) -> Result<(), RegistryError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(RegistryError::InvalidArgument(self.0))
        }
    }
}
