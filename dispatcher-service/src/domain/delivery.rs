//! A delivery and its attempt log, as partners and operators read them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::DeliveryStatus;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: Uuid,
    pub event_id: Uuid,
    pub partner_id: Uuid,
    pub notification_type: i32,
    pub status: DeliveryStatus,
    pub is_test: bool,
    pub attempt_count: u32,
    /// When the next attempt is due, for pending deliveries.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub attempts: Vec<Attempt>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub number: u32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u32,
    pub response_status: Option<u16>,
    pub error: Option<String>,
    pub response_excerpt: String,
    /// Why it did not deliver, as a stable code; `None` for a 2xx or a 410.
    pub failure: Option<super::FailureKind>,
}

/// Which of a partner's deliveries a list call asks for.
#[derive(Debug, Clone, Copy)]
pub struct ListFilter {
    pub partner_id: Uuid,
    pub notification_type: Option<i32>,
    pub status: Option<DeliveryStatus>,
    /// Published at or after this.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Published before this.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

/// What became of one event handed to storage to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub event_id: Uuid,
    pub delivery_id: Option<Uuid>,
    /// The idempotency key had been used: these are the first event's ids.
    pub duplicate: bool,
}
