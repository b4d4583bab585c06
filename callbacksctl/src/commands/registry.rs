//! The registry's commands: partners, keys, the catalogue, a partner's
//! callbacks, error states, pausing and resuming.

use callbacks_proto::registry::v1 as rpb;
use rpb::registry_service_client::RegistryServiceClient;
use serde_json::json;
use service_kit::telemetry::OutboundChannel;

use super::{read_input, status};
use crate::output::Table;
use crate::tables::{keys, page_footer, partners, registrations, types};
use crate::{Command, KeyCommand, PartnerCommand, TypesCommand};

pub(super) async fn registry_command(
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
        KeyCommand::PortalLink {
            partner,
            expires,
            gateway,
        } => {
            let issued = registry
                .issue_portal_link(rpb::IssuePortalLinkRequest {
                    partner_id: partner,
                    expires_in_seconds: u32::try_from(expires.as_secs()).unwrap_or(u32::MAX),
                })
                .await
                .map_err(status)?
                .into_inner()
                .api_key
                .unwrap_or_default();
            let key = issued.key.unwrap_or_default();
            let mut table = Table::new(&["key", "link"]);
            let gateway = gateway.trim_end_matches('/');
            table.row(vec![
                json!(key.key_id),
                json!(format!("{gateway}/portal/link?token={}", issued.token)),
            ]);
            table.footer("Send the link to the partner; `key revoke` ends it before it expires.")
        }
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
