//! The one place where dispatcher errors become gRPC statuses. Internal
//! errors are logged once, with their cause chain (`service_kit::status`).

use tonic::Status;

use crate::domain::DispatchError;

impl From<DispatchError> for Status {
    fn from(error: DispatchError) -> Self {
        match error {
            DispatchError::InvalidArgument(violations) => {
                service_kit::validation::invalid_argument(violations)
            }
            DispatchError::DeliveryNotFound(_)
            | DispatchError::RecoveryNotFound(_)
            | DispatchError::EventNotFound(_)
            | DispatchError::NoActiveRegistration { .. } => Status::not_found(error.to_string()),
            DispatchError::StillPending(_)
            | DispatchError::RedeliveredConcurrently(_)
            | DispatchError::PayloadErased(_) => Status::failed_precondition(error.to_string()),
            DispatchError::Unavailable(why) => Status::unavailable(why),
            DispatchError::OutcomeUnknown(why) => Status::unknown(why),
            DispatchError::Internal(source) => service_kit::status::internal(source.as_ref()),
        }
    }
}
