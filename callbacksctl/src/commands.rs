//! One function per command: call the service, describe the answer as a
//! table. gRPC errors are shown as the service phrased them.

use callbacks_proto::dispatcher::v1 as dpb;
use callbacks_proto::registry::v1 as rpb;
use dpb::dispatcher_service_client::DispatcherServiceClient;
use rpb::registry_service_client::RegistryServiceClient;
use serde_json::{Value, json};

use crate::connect::connect;
use crate::output::Table;
use crate::tables::{deliveries, keys, page_footer, partners, registrations, time, types};
use crate::{Cli, Command, DeliveryCommand, KeyCommand, PartnerCommand, TypesCommand};
use service_kit::telemetry::OutboundChannel;

/// A gRPC failure as the caller should read it.
fn status(e: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", e.code(), e.message())
}

/// A file's text, or standard input's for `-`.
fn read_input(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context as _;
    if path == std::path::Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("cannot read standard input")
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.json;
    match cli.command {
        Command::Receive {
            listen,
            secret,
            status,
        } => return crate::receive::run(listen, secret, status).await,
        Command::Partner(_)
        | Command::Key(_)
        | Command::Types(_)
        | Command::Callbacks { .. }
        | Command::Pause { .. }
        | Command::Resume { .. }
        | Command::Errors { .. } => {
            let channel = connect(&cli.registry, cli.registry_token.as_deref()).await?;
            let mut registry = RegistryServiceClient::new(channel);
            registry_command(&mut registry, cli.command)
                .await?
                .print(json);
        }
        Command::Delivery(_)
        | Command::Redeliver { .. }
        | Command::Recover { .. }
        | Command::Recovery { .. }
        | Command::EraseEvent { .. }
        | Command::ErasePayloads { .. }
        | Command::Publish { .. } => {
            let channel = connect(&cli.dispatcher, cli.dispatcher_token.as_deref()).await?;
            let mut dispatcher = DispatcherServiceClient::new(channel);
            dispatcher_command(&mut dispatcher, cli.command, json).await?;
        }
    }
    Ok(())
}

async fn registry_command(
    registry: &mut RegistryServiceClient<OutboundChannel>,
    command: Command,
) -> anyhow::Result<Table> {
    Ok(match command {
        Command::Partner(command) => partner_command(registry, command).await?,
        Command::Key(command) => key_command(registry, command).await?,
        Command::Types(command) => types_command(registry, command).await?,
        command @ (Command::Pause { .. } | Command::Resume { .. }) => {
            pause_command(registry, command).await?
        }
        Command::Callbacks { partner, active } => {
            let listed = registry
                .list_callbacks(rpb::ListCallbacksRequest {
                    partner_id: partner,
                    is_active: active,
                    registration_id: None,
                    page: Some(rpb::PageRequest {
                        page_number: 1,
                        page_size: 100,
                    }),
                    merchant_id: None,
                })
                .await
                .map_err(status)?
                .into_inner();
            registrations(listed.registrations).footer(page_footer(listed.page))
        }
        Command::Errors { page, page_size } => {
            let listed = registry
                .list_error_states(rpb::ListErrorStatesRequest {
                    page: Some(rpb::PageRequest {
                        page_number: page,
                        page_size,
                    }),
                })
                .await
                .map_err(status)?
                .into_inner();
            registrations(listed.registrations).footer(page_footer(listed.page))
        }
        other => anyhow::bail!("not a registry command: {other:?}"),
    })
}

/// `pause` and `resume`: a registration's deliveries wait, or flow again.
async fn pause_command(
    registry: &mut RegistryServiceClient<OutboundChannel>,
    command: Command,
) -> anyhow::Result<Table> {
    Ok(match command {
        Command::Pause {
            partner,
            notification_type,
            reason,
        } => registrations(vec![
            registry
                .pause_callback(rpb::PauseCallbackRequest {
                    partner_id: partner,
                    notification_type,
                    reason,
                })
                .await
                .map_err(status)?
                .into_inner(),
        ]),
        Command::Resume {
            partner,
            notification_type,
        } => registrations(vec![
            registry
                .resume_callback(rpb::ResumeCallbackRequest {
                    partner_id: partner,
                    notification_type,
                })
                .await
                .map_err(status)?
                .into_inner(),
        ]),
        other => anyhow::bail!("not a pause command: {other:?}"),
    })
}

/// `partner …`: create, list, show and disable partners.
async fn partner_command(
    registry: &mut RegistryServiceClient<OutboundChannel>,
    command: PartnerCommand,
) -> anyhow::Result<Table> {
    Ok(match command {
        PartnerCommand::Create { name, key_label } => {
            let created = registry
                .create_partner(rpb::CreatePartnerRequest { name, key_label })
                .await
                .map_err(status)?
                .into_inner();
            let partner = created.partner.unwrap_or_default();
            let key = created.api_key.unwrap_or_default();
            let mut table = Table::new(&["partner", "name", "api_key"]);
            table.row(vec![
                json!(partner.partner_id),
                json!(partner.name),
                json!(key.token),
            ]);
            table.footer("The API key is shown once: hand it to the partner now.")
        }
        PartnerCommand::List { page, page_size } => {
            let listed = registry
                .list_partners(rpb::ListPartnersRequest {
                    page: Some(rpb::PageRequest {
                        page_number: page,
                        page_size,
                    }),
                })
                .await
                .map_err(status)?
                .into_inner();
            partners(listed.partners).footer(page_footer(listed.page))
        }
        PartnerCommand::Show { partner } => partners(vec![
            registry
                .get_partner(rpb::GetPartnerRequest {
                    partner_id: partner,
                })
                .await
                .map_err(status)?
                .into_inner(),
        ]),
        PartnerCommand::Disable { partner } => partners(vec![
            registry
                .disable_partner(rpb::DisablePartnerRequest {
                    partner_id: partner,
                })
                .await
                .map_err(status)?
                .into_inner(),
        ]),
    })
}

/// `key …`: issue, list and revoke a partner's API keys.
async fn key_command(
    registry: &mut RegistryServiceClient<OutboundChannel>,
    command: KeyCommand,
) -> anyhow::Result<Table> {
    Ok(match command {
        KeyCommand::Issue { partner, label } => {
            let issued = registry
                .issue_api_key(rpb::IssueApiKeyRequest {
                    partner_id: partner,
                    label,
                })
                .await
                .map_err(status)?
                .into_inner()
                .api_key
                .unwrap_or_default();
            let key = issued.key.unwrap_or_default();
            let mut table = Table::new(&["key", "label", "api_key"]);
            table.row(vec![
                json!(key.key_id),
                json!(key.label),
                json!(issued.token),
            ]);
            table.footer("The API key is shown once: hand it to the partner now.")
        }
        KeyCommand::List { partner, all } => keys(
            registry
                .list_api_keys(rpb::ListApiKeysRequest {
                    partner_id: partner,
                    include_revoked: all,
                })
                .await
                .map_err(status)?
                .into_inner()
                .keys,
        ),
        KeyCommand::Revoke { partner, key } => keys(vec![
            registry
                .revoke_api_key(rpb::RevokeApiKeyRequest {
                    partner_id: partner,
                    key_id: key,
                })
                .await
                .map_err(status)?
                .into_inner(),
        ]),
    })
}

/// `types …`: the notification types and their payload schemas.
async fn types_command(
    registry: &mut RegistryServiceClient<OutboundChannel>,
    command: TypesCommand,
) -> anyhow::Result<Table> {
    Ok(match command {
        TypesCommand::List => types(
            registry
                .list_notification_types(rpb::ListNotificationTypesRequest {})
                .await
                .map_err(status)?
                .into_inner()
                .notification_types,
        ),
        TypesCommand::Add {
            id,
            name,
            description,
            echoable,
            schema_file,
        } => {
            let t = registry
                .create_notification_type(rpb::CreateNotificationTypeRequest {
                    notification_type_id: id,
                    name,
                    description,
                    echoable,
                    payload_schema_json: schema_file.as_deref().map(read_input).transpose()?,
                })
                .await
                .map_err(status)?
                .into_inner();
            types(vec![t])
        }
        TypesCommand::Schema { id, file, clear: _ } => {
            let t = registry
                .set_payload_schema(rpb::SetPayloadSchemaRequest {
                    notification_type_id: id,
                    payload_schema_json: file.as_deref().map(read_input).transpose()?,
                })
                .await
                .map_err(status)?
                .into_inner();
            types(vec![t])
        }
    })
}

async fn dispatcher_command(
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
        } => {
            publish(
                dispatcher,
                partner,
                notification_type,
                payload,
                idempotency_key,
                json,
            )
            .await?
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

/// `publish`: one event, as a platform service publishes it.
async fn publish(
    dispatcher: &mut DispatcherServiceClient<OutboundChannel>,
    partner: String,
    notification_type: i32,
    payload: String,
    idempotency_key: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let published = dispatcher
        .publish(dpb::PublishRequest {
            partner_id: partner,
            notification_type,
            payload_json: payload,
            idempotency_key,
            occurred_at: None,
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
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or_default(),
    }
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
