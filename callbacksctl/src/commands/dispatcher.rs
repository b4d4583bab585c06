//! The dispatcher's commands: deliveries, redelivery, recovery in bulk,
//! erasure, and publishing as a platform service would.

use callbacks_proto::dispatcher::v1 as dpb;
use dpb::dispatcher_service_client::DispatcherServiceClient;
use serde_json::{Value, json};
use service_kit::telemetry::OutboundChannel;

use super::status;
use crate::output::Table;
use crate::tables::{deliveries, time};
use crate::{Command, DeliveryCommand};

pub(super) async fn dispatcher_command(
    dispatcher: &mut DispatcherServiceClient<OutboundChannel>,
    command: Command,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        Command::Delivery(DeliveryCommand::Show { delivery }) => {
            show_delivery(dispatcher, delivery, json).await?
        }
        Command::Delivery(DeliveryCommand::List {
            partner,
            notification_type,
            status: wanted,
            page,
            page_size,
        }) => {
            list_deliveries(
                dispatcher,
                partner,
                notification_type,
                wanted,
                page,
                page_size,
                json,
            )
            .await?
        }
        Command::Redeliver { delivery } => {
            deliveries(vec![redeliver(dispatcher, delivery).await?]).print(json);
        }
        command @ (Command::Recover { .. } | Command::Recovery { .. }) => {
            recovery_command(dispatcher, command).await?.print(json);
        }
        command @ (Command::EraseEvent { .. } | Command::ErasePayloads { .. }) => {
            erase_command(dispatcher, command).await?.print(json);
        }
        Command::Publish {
            partner,
            notification_type,
            payload,
            idempotency_key,
            ordering_key,
        } => {
            let keys = Keys {
                idempotency: idempotency_key,
                ordering: ordering_key,
            };
            publish(dispatcher, partner, notification_type, payload, keys, json).await?
        }
        other => anyhow::bail!("not a dispatcher command: {other:?}"),
    }
    Ok(())
}

/// `delivery show`: one delivery and its attempt log.
async fn show_delivery(
    dispatcher: &mut DispatcherServiceClient<OutboundChannel>,
    delivery: String,
    json: bool,
) -> anyhow::Result<()> {
    let d = dispatcher
        .get_delivery(dpb::GetDeliveryRequest {
            delivery_id: delivery,
            partner_id: None,
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut attempts = Table::new(&[
        "attempt",
        "started",
        "duration_ms",
        "status",
        "kind",
        "error",
        "response",
    ]);
    for a in &d.attempts {
        attempts.row(vec![
            json!(a.attempt_number),
            time(a.started_at),
            json!(a.duration_ms),
            a.response_status.map_or(Value::Null, Value::from),
            a.failure_kind.clone().map_or(Value::Null, Value::from),
            a.error.clone().map_or(Value::Null, Value::from),
            json!(a.response_excerpt.chars().take(60).collect::<String>()),
        ]);
    }
    if json {
        let mut summary = deliveries(vec![d]).to_json();
        summary[0]["attempts_log"] = attempts.to_json();
        println!("{}", summary[0]);
    } else {
        println!(
            "{}\n\n{}",
            deliveries(vec![d]).to_text(),
            attempts.to_text()
        );
    }
    Ok(())
}

/// `delivery list`: a partner's deliveries, filtered and paged.
async fn list_deliveries(
    dispatcher: &mut DispatcherServiceClient<OutboundChannel>,
    partner: String,
    notification_type: Option<i32>,
    wanted: Option<String>,
    page: u32,
    page_size: u32,
    json: bool,
) -> anyhow::Result<()> {
    let status_filter = match wanted.as_deref() {
        None => None,
        Some("pending") => Some(dpb::DeliveryStatus::Pending),
        Some("delivered") => Some(dpb::DeliveryStatus::Delivered),
        Some("failed") => Some(dpb::DeliveryStatus::Failed),
        Some("cancelled") => Some(dpb::DeliveryStatus::Cancelled),
        Some(other) => {
            anyhow::bail!("--status {other}: use pending, delivered, failed or cancelled")
        }
    };
    let listed = dispatcher
        .list_deliveries(dpb::ListDeliveriesRequest {
            partner_id: partner,
            notification_type,
            status: status_filter.map(Into::into),
            page_number: page,
            page_size,
            ..Default::default()
        })
        .await
        .map_err(status)?
        .into_inner();
    let more = if listed.has_next_page {
        "; more with --page N"
    } else {
        ""
    };
    deliveries(listed.deliveries)
        .footer(format!(
            "page {} (size {}){more}",
            listed.page_number, listed.page_size
        ))
        .print(json);
    Ok(())
}

/// A publish's optional keys.
struct Keys {
    idempotency: Option<String>,
    ordering: Option<String>,
}

/// `publish`: one event, as a platform service publishes it.
async fn publish(
    dispatcher: &mut DispatcherServiceClient<OutboundChannel>,
    partner: String,
    notification_type: i32,
    payload: String,
    keys: Keys,
    json: bool,
) -> anyhow::Result<()> {
    let published = dispatcher
        .publish(dpb::PublishRequest {
            partner_id: partner,
            notification_type,
            payload_json: payload,
            idempotency_key: keys.idempotency,
            occurred_at: None,
            ordering_key: keys.ordering,
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut table = Table::new(&["event", "delivery", "duplicate"]);
    table.row(vec![
        json!(published.event_id),
        published.delivery_id.map_or(Value::Null, Value::from),
        json!(published.duplicate),
    ]);
    let table = if table.to_json()[0]["delivery"].is_null() {
        table.footer("No active registration for this partner and type: stored, not delivered.")
    } else {
        table
    };
    table.print(json);
    Ok(())
}

/// `recover` and `recovery`: send failed deliveries again in bulk, and
/// read how far a recovery is.
async fn recovery_command(
    dispatcher: &mut DispatcherServiceClient<OutboundChannel>,
    command: Command,
) -> anyhow::Result<Table> {
    let recovery = match command {
        Command::Recover {
            partner,
            since,
            until,
            notification_type,
            include_cancelled,
            dry_run,
        } => dispatcher
            .recover_deliveries(dpb::RecoverDeliveriesRequest {
                partner_id: partner,
                notification_type,
                since: Some(timestamp(since)),
                until: Some(timestamp(until)),
                include_cancelled,
                dry_run,
            })
            .await
            .map_err(status)?
            .into_inner(),
        Command::Recovery { recovery } => dispatcher
            .get_recovery(dpb::GetRecoveryRequest {
                recovery_id: recovery,
                partner_id: None,
            })
            .await
            .map_err(status)?
            .into_inner(),
        other => anyhow::bail!("not a recovery command: {other:?}"),
    };
    Ok(crate::tables::recovery(recovery))
}

fn timestamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    std::time::SystemTime::from(at).into()
}

/// `redeliver`: one delivery again, as a new series.
async fn redeliver(
    dispatcher: &mut DispatcherServiceClient<OutboundChannel>,
    delivery: String,
) -> anyhow::Result<dpb::Delivery> {
    Ok(dispatcher
        .redeliver(dpb::RedeliverRequest {
            delivery_id: delivery,
            partner_id: None,
        })
        .await
        .map_err(status)?
        .into_inner())
}

/// `erase-event` and `erase-payloads`: payloads removed, deliveries kept.
async fn erase_command(
    dispatcher: &mut DispatcherServiceClient<OutboundChannel>,
    command: Command,
) -> anyhow::Result<Table> {
    let erased = match command {
        Command::EraseEvent { event } => dispatcher
            .erase_event(dpb::EraseEventRequest {
                event_id: event,
                partner_id: None,
            })
            .await
            .map_err(status)?
            .into_inner(),
        Command::ErasePayloads { partner } => dispatcher
            .erase_partner_payloads(dpb::ErasePartnerPayloadsRequest {
                partner_id: partner,
            })
            .await
            .map_err(status)?
            .into_inner(),
        other => anyhow::bail!("not an erase command: {other:?}"),
    };
    let mut table = Table::new(&["erased_events", "cancelled_deliveries"]);
    table.row(vec![
        json!(erased.erased_events),
        json!(erased.cancelled_deliveries),
    ]);
    Ok(table)
}
