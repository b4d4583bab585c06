//! What a registration's health event says: it entered its error state,
//! recovered from it, or was paused automatically (disabled). One is made
//! for each such change, never for an attempt that changes nothing.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::ErrorState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthKind {
    ErrorStateEntered,
    Recovered,
    Disabled,
}

impl HealthKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ErrorStateEntered => "error_state_entered",
            Self::Recovered => "recovered",
            Self::Disabled => "disabled",
        }
    }

    /// The kind a stored name means (the table's CHECK admits only these).
    pub fn from_stored(name: &str) -> Self {
        match name {
            "recovered" => Self::Recovered,
            "disabled" => Self::Disabled,
            _ => Self::ErrorStateEntered,
        }
    }

    /// The change from `before` to `after`, if the error state changed.
    pub fn of_change(before: &ErrorState, after: &ErrorState) -> Option<Self> {
        match (before.is_in_error_state, after.is_in_error_state) {
            (false, true) => Some(Self::ErrorStateEntered),
            (true, false) => Some(Self::Recovered),
            _ => None,
        }
    }
}

/// One health event of a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    /// Its number, in the order the changes committed (0 before it is
    /// recorded).
    pub id: i64,
    pub partner_id: Uuid,
    pub notification_type: i32,
    pub registration_id: Uuid,
    pub kind: HealthKind,
    pub reason: Option<String>,
    pub occurred_at: DateTime<Utc>,
}
