//! A change to what the registry answers, as other services' caches must
//! hear of it: which cached answers it makes stale.

use super::{ApiKeyId, NotificationTypeId, PartnerId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The partner's registration for the type was created, changed (URL,
    /// credentials, secrets) or deactivated.
    Callback(PartnerId, NotificationTypeId),
    /// The partner was disabled: none of its callbacks resolve, none of its
    /// keys authenticate.
    Partner(PartnerId),
    /// The key was revoked.
    ApiKey(PartnerId, ApiKeyId),
    /// The notification-type catalogue changed.
    Catalogue,
}

/// The changes after a version, and the version they bring a reader to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangesSince {
    pub version: u64,
    /// Each change with its version, in order.
    pub changes: Vec<(u64, Change)>,
    /// False when the changes are too many or no longer kept: the reader
    /// must forget everything it cached.
    pub complete: bool,
}
