//! What the registry means, free of transport and storage: the newtypes that
//! can only be built valid, the registration and its error-state rules, and
//! the errors the rest of the service speaks in.
//!
//! Invariant: nothing here imports tonic, diesel or serde. The gRPC layer
//! parses wire messages into these types (so nothing past it re-checks), and
//! storage turns rows into them.

pub mod callback_url;
pub mod change;
pub mod error;
pub mod health;
pub mod ids;
pub mod paging;
pub mod partner;
pub mod registration;
pub mod retry_policy;
pub mod signing;
pub mod text;

pub use callback_url::{CallbackUrl, UrlPolicy};
pub use change::{Change, ChangesSince};
pub use error::{FieldViolation, RegistryError};
pub use ids::{ApiKeyId, NotificationTypeId, PartnerId, RegistrationId};
pub use paging::{Page, PageRequest};
pub use partner::{ApiKey, NewNotificationType, NotificationType, Partner};
pub use registration::{ErrorState, Outcome, Pause, Registration};
pub use retry_policy::RetryPolicy;
pub use signing::SignatureScheme;
