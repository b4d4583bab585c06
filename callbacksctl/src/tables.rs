//! The tables each command prints: one builder per kind of answer.

use callbacks_proto::dispatcher::v1 as dpb;
use callbacks_proto::registry::v1 as rpb;
use prost_types::Timestamp;
use serde_json::{Value, json};

use crate::output::Table;

pub(crate) fn time(ts: Option<Timestamp>) -> Value {
    ts.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
        .map_or(Value::Null, |t| {
            json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        })
}

pub(crate) fn page_footer(page: Option<rpb::PageInfo>) -> String {
    let page = page.unwrap_or_default();
    format!(
        "page {} (size {}){}",
        page.page_number,
        page.page_size,
        if page.has_next_page {
            "; more with --page N"
        } else {
            ""
        }
    )
}

pub(crate) fn partners(list: Vec<rpb::Partner>) -> Table {
    let mut table = Table::new(&["partner", "name", "created", "disabled"]);
    for p in list {
        table.row(vec![
            json!(p.partner_id),
            json!(p.name),
            time(p.created_at),
            time(p.disabled_at),
        ]);
    }
    table
}

pub(crate) fn keys(list: Vec<rpb::ApiKey>) -> Table {
    let mut table = Table::new(&["key", "label", "prefix", "created", "revoked"]);
    for k in list {
        table.row(vec![
            json!(k.key_id),
            json!(k.label),
            json!(k.token_prefix),
            time(k.created_at),
            time(k.revoked_at),
        ]);
    }
    table
}

pub(crate) fn types(list: Vec<rpb::NotificationType>) -> Table {
    let mut table = Table::new(&["type", "name", "echoable", "description", "payload_schema"]);
    for t in list {
        let schema = t
            .payload_schema_json
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or(serde_json::Value::Null);
        table.row(vec![
            json!(t.notification_type_id),
            json!(t.name),
            json!(t.echoable),
            json!(t.description),
            schema,
        ]);
    }
    table
}

pub(crate) fn registrations(list: Vec<rpb::Registration>) -> Table {
    let mut table = Table::new(&[
        "registration",
        "partner",
        "type",
        "url",
        "active",
        "paused",
        "retry",
        "error",
        "failing_since",
    ]);
    for r in list {
        let retry = r.retry_policy.map(|p| p.name).unwrap_or_default();
        table.row(vec![
            json!(r.registration_id),
            json!(r.partner_id),
            json!(r.notification_type),
            json!(r.callback_url),
            json!(r.is_active),
            r.pause_reason.map_or(Value::Null, Value::from),
            json!(retry),
            r.error_state_reason.map_or(Value::Null, Value::from),
            time(r.detected_error_state_at),
        ]);
    }
    table
}

pub(crate) fn status_name(status: i32) -> &'static str {
    match dpb::DeliveryStatus::try_from(status) {
        Ok(dpb::DeliveryStatus::Pending) => "pending",
        Ok(dpb::DeliveryStatus::Delivered) => "delivered",
        Ok(dpb::DeliveryStatus::Failed) => "failed",
        Ok(dpb::DeliveryStatus::Cancelled) => "cancelled",
        _ => "unknown",
    }
}

pub(crate) fn deliveries(list: Vec<dpb::Delivery>) -> Table {
    let mut table = Table::new(&[
        "delivery",
        "type",
        "status",
        "attempts",
        "next_attempt",
        "test",
        "created",
    ]);
    for d in list {
        table.row(vec![
            json!(d.delivery_id),
            json!(d.notification_type),
            json!(status_name(d.status)),
            json!(d.attempt_count),
            time(d.next_attempt_at),
            json!(d.is_test),
            time(d.created_at),
        ]);
    }
    table
}

/// A recovery, or what a dry run would send.
pub(crate) fn recovery(r: dpb::Recovery) -> Table {
    let mut table = Table::new(&[
        "recovery", "state", "partner", "type", "total", "resent", "earliest", "latest",
    ]);
    table.row(vec![
        r.recovery_id.map_or(Value::Null, Value::from),
        json!(r.state),
        json!(r.partner_id),
        r.notification_type.map_or(Value::Null, Value::from),
        json!(r.total),
        json!(r.resent),
        time(r.earliest),
        time(r.latest),
    ]);
    table
}
