//! Domain values into wire messages.

use callbacks_proto::dispatcher::v1 as pb;
use chrono::{DateTime, Utc};
use prost_types::Timestamp;

use crate::domain::delivery::Stored;
use crate::domain::{Attempt, Delivery, DeliveryStatus};

pub(crate) fn timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or_default(),
    }
}

pub(crate) fn from_timestamp(ts: &Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}

pub(crate) fn status(status: DeliveryStatus) -> pb::DeliveryStatus {
    match status {
        DeliveryStatus::Pending => pb::DeliveryStatus::Pending,
        DeliveryStatus::Delivered => pb::DeliveryStatus::Delivered,
        DeliveryStatus::Failed => pb::DeliveryStatus::Failed,
        DeliveryStatus::Cancelled => pb::DeliveryStatus::Cancelled,
    }
}

pub(crate) fn from_status(status: pb::DeliveryStatus) -> Option<DeliveryStatus> {
    match status {
        pb::DeliveryStatus::Unspecified => None,
        pb::DeliveryStatus::Pending => Some(DeliveryStatus::Pending),
        pb::DeliveryStatus::Delivered => Some(DeliveryStatus::Delivered),
        pb::DeliveryStatus::Failed => Some(DeliveryStatus::Failed),
        pb::DeliveryStatus::Cancelled => Some(DeliveryStatus::Cancelled),
    }
}

impl From<Stored> for pb::PublishResponse {
    fn from(s: Stored) -> Self {
        Self {
            event_id: s.event_id.to_string(),
            delivery_id: s.delivery_id.map(|id| id.to_string()),
            duplicate: s.duplicate,
        }
    }
}

impl From<Attempt> for pb::Attempt {
    fn from(a: Attempt) -> Self {
        Self {
            attempt_number: a.number,
            started_at: Some(timestamp(a.started_at)),
            duration_ms: a.duration_ms,
            response_status: a.response_status.map(u32::from),
            error: a.error,
            response_excerpt: a.response_excerpt,
            failure_kind: a.failure.map(|kind| kind.code().to_owned()),
        }
    }
}

impl From<Delivery> for pb::Delivery {
    fn from(d: Delivery) -> Self {
        Self {
            delivery_id: d.id.to_string(),
            event_id: d.event_id.to_string(),
            partner_id: d.partner_id.to_string(),
            notification_type: d.notification_type,
            status: status(d.status).into(),
            is_test: d.is_test,
            attempt_count: d.attempt_count,
            next_attempt_at: d.next_attempt_at.map(timestamp),
            created_at: Some(timestamp(d.created_at)),
            attempts: d.attempts.into_iter().map(Into::into).collect(),
        }
    }
}

/// An optional time range from the wire: each end a valid timestamp if
/// given (a range that ends before it starts is empty, not an error); each
/// violation pushed to `v`.
pub(crate) fn time_range(
    v: &mut service_kit::validation::Violations,
    since: Option<&Timestamp>,
    until: Option<&Timestamp>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    use service_kit::validation::FieldViolation;
    let mut moment = |field: &'static str, ts: Option<&Timestamp>| {
        let ts = ts?;
        let parsed = from_timestamp(ts);
        if parsed.is_none() {
            v.push(FieldViolation::new(field, "must be a valid timestamp"));
        }
        parsed
    };
    (moment("since", since), moment("until", until))
}
