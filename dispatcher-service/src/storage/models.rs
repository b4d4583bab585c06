//! Row structs: the shape of the tables, converted into domain values here
//! and used nowhere else.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::{attempts, deliveries};
use crate::domain::{Attempt, Delivery, DeliveryStatus, FailureKind};

/// An event to store (`storage::events::insert`).
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub notification_type: i32,
    /// Shared, not copied, between the insert and a hand-off to the worker.
    pub payload: bytes::Bytes,
    pub idempotency_key: Option<String>,
    /// Deliveries with the same key to the same registration are attempted
    /// one at a time, in publish order (`storage::ordering`).
    pub ordering_key: Option<String>,
    pub is_test: bool,
    pub has_subscriber: bool,
    pub occurred_at: DateTime<Utc>,
    pub trace_context: Option<String>,
    /// Set when this process will attempt the delivery itself: the delivery
    /// is stored already leased, so no claim is needed (and no other worker
    /// takes it before the lease ends).
    pub lease: Option<Lease>,
}

/// A lease taken at insert; it ends `length` after the database's `now()`,
/// the clock that claims compare with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub token: Uuid,
    pub length: std::time::Duration,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = deliveries, check_for_backend(diesel::pg::Pg))]
pub struct DeliveryRow {
    pub id: Uuid,
    pub event_id: Uuid,
    pub partner_id: Uuid,
    pub notification_type: i32,
    pub is_test: bool,
    pub status: String,
    pub attempt_count: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = attempts, check_for_backend(diesel::pg::Pg))]
pub struct AttemptRow {
    pub attempt_number: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub response_status: Option<i32>,
    pub error: Option<String>,
    pub response_excerpt: String,
    pub failure_kind: Option<String>,
}

impl DeliveryRow {
    pub fn into_domain(self, attempts: Vec<AttemptRow>) -> Delivery {
        // The CHECK constraint admits only the four statuses.
        let status = DeliveryStatus::parse(&self.status).unwrap_or(DeliveryStatus::Pending);
        Delivery {
            id: self.id,
            event_id: self.event_id,
            partner_id: self.partner_id,
            notification_type: self.notification_type,
            // A delivery waiting for its lane's turn has no due time yet.
            next_attempt_at: (status == DeliveryStatus::Pending
                && !super::ordering::is_waiting(self.next_attempt_at))
            .then_some(self.next_attempt_at),
            status,
            is_test: self.is_test,
            attempt_count: u32::try_from(self.attempt_count).unwrap_or_default(),
            last_error: self.last_error,
            created_at: self.created_at,
            attempts: attempts.into_iter().map(AttemptRow::into_domain).collect(),
        }
    }
}

impl AttemptRow {
    fn into_domain(self) -> Attempt {
        Attempt {
            number: u32::try_from(self.attempt_number).unwrap_or_default(),
            started_at: self.started_at,
            duration_ms: u32::try_from(self.duration_ms).unwrap_or_default(),
            response_status: self.response_status.and_then(|s| u16::try_from(s).ok()),
            error: self.error,
            response_excerpt: self.response_excerpt,
            failure: self.failure_kind.as_deref().and_then(FailureKind::parse),
        }
    }
}
