//! The one place where registry errors become gRPC statuses.
//!
//! Validation failures carry a `google.rpc.BadRequest` detail naming each
//! field and rule, so that the gateway can list them in its problem
//! documents. Internal errors are logged once, with their cause chain, and
//! reach the caller as a bare `INTERNAL` (`service_kit::status`).

use tonic::Status;

use crate::domain::RegistryError;

impl From<RegistryError> for Status {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::InvalidArgument(violations) => {
                service_kit::validation::invalid_argument(violations)
            }
            RegistryError::PartnerNotFound(_)
            | RegistryError::ApiKeyNotFound { .. }
            | RegistryError::NoActiveRegistration { .. }
            | RegistryError::RegistrationNotFound(_)
            | RegistryError::NotificationTypeNotFound(_)
            | RegistryError::Vanished => Status::not_found(error.to_string()),
            RegistryError::NotificationTypeExists(_)
            | RegistryError::NotificationTypeNameTaken(_) => {
                Status::already_exists(error.to_string())
            }
            RegistryError::PartnerDisabled(_)
            | RegistryError::AlreadyPaused { .. }
            | RegistryError::NotPaused { .. }
            | RegistryError::TooManyPreviousKeys { .. } => {
                Status::failed_precondition(error.to_string())
            }
            RegistryError::Unauthenticated => Status::unauthenticated("invalid API key"),
            RegistryError::Internal(source) => service_kit::status::internal(source.as_ref()),
        }
    }
}
