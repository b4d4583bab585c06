//! The one place where registry errors become gRPC statuses.
//!
//! Validation failures carry a `google.rpc.BadRequest` detail naming each
//! field and rule, so that the gateway can list them in its problem
//! documents. Internal errors are logged here, once, with their cause chain,
//! and reach the caller as a bare `INTERNAL`.

use tonic::Status;

use crate::domain::RegistryError;

impl From<RegistryError> for Status {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::InvalidArgument(violations) => {
                service_kit::validation::invalid_argument(violations)
            }
            RegistryError::NotFound(what) => Status::not_found(what),
            RegistryError::AlreadyExists(what) => Status::already_exists(what),
            RegistryError::FailedPrecondition(why) => Status::failed_precondition(why),
            RegistryError::Unauthenticated => Status::unauthenticated("invalid API key"),
            RegistryError::Internal(source) => {
                tracing::error!(error = %ChainDisplay(source.as_ref()), "internal error");
                Status::internal("internal error")
            }
        }
    }
}

/// Displays an error with its whole `source()` chain on one line.
struct ChainDisplay<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ChainDisplay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
