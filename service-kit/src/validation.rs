//! Validation errors, the same in every service: each names the field and
//! the rule it broke, callers hear about every broken field at once, and on
//! the wire they become `INVALID_ARGUMENT` with a `google.rpc.BadRequest`
//! detail, which the gateway turns into `invalidParams`.

use std::fmt;

/// One broken rule on one input field.
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

/// Collects the violations of several fields.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

/// Every `Violations::check` that returned `None` recorded a violation, so
/// once `finish()` has passed, each checked value is `Some`.
pub const CHECKED: &str = "finish() passed, so every checked value parsed";

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

    /// `Ok(())` when nothing was recorded, else every violation.
    pub fn finish(self) -> Result<(), Invalid> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Invalid(self.0))
        }
    }
}

/// Input that broke one or more rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub Vec<FieldViolation>);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid argument: {}", describe(&self.0))
    }
}

impl std::error::Error for Invalid {}

impl From<FieldViolation> for Invalid {
    fn from(violation: FieldViolation) -> Self {
        Self(vec![violation])
    }
}

#[cfg(feature = "grpc")]
impl From<Invalid> for tonic::Status {
    fn from(invalid: Invalid) -> Self {
        invalid_argument(invalid.0)
    }
}

/// `a: rule; b: rule`, for messages and logs.
pub fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `INVALID_ARGUMENT` carrying each violation as a BadRequest field violation.
#[cfg(feature = "grpc")]
pub fn invalid_argument(violations: Vec<FieldViolation>) -> tonic::Status {
    use tonic_types::StatusExt;
    let message = describe(&violations);
    let details = tonic_types::ErrorDetails::with_bad_request(
        violations
            .into_iter()
            .map(|v| tonic_types::FieldViolation::new(v.field, v.rule))
            .collect::<Vec<_>>(),
    );
    tonic::Status::with_error_details(tonic::Code::InvalidArgument, message, details)
}
