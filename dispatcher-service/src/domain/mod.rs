//! What delivery means, free of transport and storage: the retry policy as
//! a value, how an attempt's result is classified, how a request is signed,
//! and the errors the service speaks in.
//!
//! Invariant: nothing here imports tonic, diesel or hyper.

pub mod attempt;
pub mod delivery;
pub mod error;
pub mod failure;
pub mod queue;
pub mod recovery;
pub mod retry;
pub mod signature;

pub use attempt::{AttemptResult, DeliveryStatus};
pub use delivery::{Attempt, Delivery};
pub use error::DispatchError;
pub use failure::FailureKind;
pub use recovery::{Recovery, RecoveryPlan, RecoveryScope, RecoveryState};
pub use retry::{NextStep, RetryPolicy};
