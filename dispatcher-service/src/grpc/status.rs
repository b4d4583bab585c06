//! The one place where dispatcher errors become gRPC statuses. Internal
//! errors are logged here, once, with their cause chain.

use tonic::Status;

use crate::domain::DispatchError;

impl From<DispatchError> for Status {
    fn from(error: DispatchError) -> Self {
        match error {
            DispatchError::InvalidArgument(violations) => {
                service_kit::validation::invalid_argument(violations)
            }
            DispatchError::NotFound(what) => Status::not_found(what),
            DispatchError::FailedPrecondition(why) => Status::failed_precondition(why),
            DispatchError::Unavailable(why) => Status::unavailable(why),
            DispatchError::OutcomeUnknown(why) => Status::unknown(why),
            DispatchError::Internal(source) => {
                let mut chain = source.to_string();
                let mut cause = source.source();
                while let Some(c) = cause {
                    chain.push_str(": ");
                    chain.push_str(&c.to_string());
                    cause = c.source();
                }
                tracing::error!(error = %chain, "internal error");
                Status::internal("internal error")
            }
        }
    }
}
