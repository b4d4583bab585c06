//! The gRPC edge: parses each request into domain values (collecting every
//! field violation), calls the service, and converts the answer back.
//! Nothing past this module sees a wire type.

pub(crate) mod callers;
pub(crate) mod convert;
mod parse;
pub(crate) mod status;

use std::sync::Arc;

use callbacks_proto::registry::v1 as pb;
use pb::registry_service_server::RegistryService;
use secrecy::SecretString;
use tonic::{Request, Response, Status};

use crate::domain::text;
use crate::domain::{ApiKeyId, NotificationTypeId, PartnerId, RegistryError, UrlPolicy};
use crate::service::Registry;
use convert::page_info;
use service_kit::validation::{CHECKED, FieldViolation, Violations};

#[derive(Debug, Clone)]
pub(crate) struct RegistryGrpc {
    registry: Arc<Registry>,
    url_policy: Arc<UrlPolicy>,
}

impl RegistryGrpc {
    pub(crate) fn new(registry: Arc<Registry>, url_policy: UrlPolicy) -> Self {
        Self {
            registry,
            url_policy: Arc::new(url_policy),
        }
    }
}

type GrpcResult<T> = Result<Response<T>, Status>;

/// The most changes one `ListChanges` answers; a caller further behind
/// forgets its whole cache, which is cheaper than applying more.
const MAX_CHANGES: usize = 1_000;

fn ok<T>(value: impl Into<T>) -> GrpcResult<T> {
    Ok(Response::new(value.into()))
}

#[tonic::async_trait]
impl RegistryService for RegistryGrpc {
    async fn create_partner(
        &self,
        request: Request<pb::CreatePartnerRequest>,
    ) -> GrpcResult<pb::CreatePartnerResponse> {
        let request = request.into_inner();
        let mut violations = Violations::default();
        let name = violations.check(text::required("name", &request.name, 200));
        let label = violations.check(text::optional("key_label", &request.key_label, 100));
        violations.finish()?;
        let (partner, key) = self
            .registry
            .create_partner(name.expect(CHECKED), label.expect(CHECKED))
            .await?;
        ok(pb::CreatePartnerResponse {
            partner: Some(partner.into()),
            api_key: Some(key.into()),
        })
    }

    async fn get_partner(
        &self,
        request: Request<pb::GetPartnerRequest>,
    ) -> GrpcResult<pb::Partner> {
        let id = parse::partner_id(&request.into_inner().partner_id)?;
        ok(self.registry.get_partner(id).await?)
    }

    async fn list_partners(
        &self,
        request: Request<pb::ListPartnersRequest>,
    ) -> GrpcResult<pb::ListPartnersResponse> {
        let page = self
            .registry
            .list_partners(parse::page(request.into_inner().page)?)
            .await?;
        ok(pb::ListPartnersResponse {
            page: Some(page_info(&page)),
            partners: page.items.into_iter().map(Into::into).collect(),
        })
    }

    async fn disable_partner(
        &self,
        request: Request<pb::DisablePartnerRequest>,
    ) -> GrpcResult<pb::Partner> {
        let id = parse::partner_id(&request.into_inner().partner_id)?;
        ok(self.registry.disable_partner(id).await?)
    }

    async fn issue_api_key(
        &self,
        request: Request<pb::IssueApiKeyRequest>,
    ) -> GrpcResult<pb::IssueApiKeyResponse> {
        let request = request.into_inner();
        let mut violations = Violations::default();
        let id = violations.check(PartnerId::parse("partner_id", &request.partner_id));
        let label = violations.check(text::optional("label", &request.label, 100));
        violations.finish()?;
        let id = id.expect(CHECKED);
        let label = label.expect(CHECKED);
        let key = self.registry.issue_api_key(id, label).await?;
        ok(pb::IssueApiKeyResponse {
            api_key: Some(key.into()),
        })
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> GrpcResult<pb::ListApiKeysResponse> {
        let request = request.into_inner();
        let id = parse::partner_id(&request.partner_id)?;
        let keys = self
            .registry
            .list_api_keys(id, request.include_revoked)
            .await?;
        ok(pb::ListApiKeysResponse {
            keys: keys.into_iter().map(Into::into).collect(),
        })
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> GrpcResult<pb::ApiKey> {
        let request = request.into_inner();
        let mut violations = Violations::default();
        let partner = violations.check(PartnerId::parse("partner_id", &request.partner_id));
        let key = violations.check(ApiKeyId::parse("key_id", &request.key_id));
        violations.finish()?;
        let partner = partner.expect(CHECKED);
        let key = key.expect(CHECKED);
        ok(self.registry.revoke_api_key(partner, key).await?)
    }

    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> GrpcResult<pb::AuthenticateResponse> {
        let token = SecretString::from(request.into_inner().token);
        let key = self.registry.authenticate(&token).await?;
        ok(pb::AuthenticateResponse {
            partner_id: key.partner_id.to_string(),
            key_id: key.id.to_string(),
            portal_only: key.portal_only,
        })
    }

    async fn issue_portal_link(
        &self,
        request: Request<pb::IssuePortalLinkRequest>,
    ) -> GrpcResult<pb::IssueApiKeyResponse> {
        let request = request.into_inner();
        let mut violations = Violations::default();
        let id = violations.check(PartnerId::parse("partner_id", &request.partner_id));
        let lasts = match request.expires_in_seconds {
            0 => Some(std::time::Duration::from_secs(3600)),
            secs @ 60..=86_400 => Some(std::time::Duration::from_secs(secs.into())),
            _ => {
                violations.push(FieldViolation::new(
                    "expires_in_seconds",
                    "must be between 60 and 86400 (a day), or 0 for an hour",
                ));
                None
            }
        };
        violations.finish()?;
        let key = self
            .registry
            .issue_portal_link(id.expect(CHECKED), lasts.expect(CHECKED))
            .await?;
        ok(pb::IssueApiKeyResponse {
            api_key: Some(key.into()),
        })
    }

    async fn list_notification_types(
        &self,
        _request: Request<pb::ListNotificationTypesRequest>,
    ) -> GrpcResult<pb::ListNotificationTypesResponse> {
        let types = self.registry.list_notification_types().await?;
        ok(pb::ListNotificationTypesResponse {
            notification_types: types.into_iter().map(Into::into).collect(),
        })
    }

    async fn get_notification_type(
        &self,
        request: Request<pb::GetNotificationTypeRequest>,
    ) -> GrpcResult<pb::NotificationType> {
        let id = NotificationTypeId::parse(
            "notification_type_id",
            request.into_inner().notification_type_id,
        )
        .map_err(RegistryError::from)?;
        ok(self.registry.get_notification_type(id).await?)
    }

    async fn create_notification_type(
        &self,
        request: Request<pb::CreateNotificationTypeRequest>,
    ) -> GrpcResult<pb::NotificationType> {
        let new = parse::new_notification_type(request.into_inner())?;
        ok(self.registry.create_notification_type(new).await?)
    }

    async fn set_payload_schema(
        &self,
        request: Request<pb::SetPayloadSchemaRequest>,
    ) -> GrpcResult<pb::NotificationType> {
        let request = request.into_inner();
        let mut violations = Violations::default();
        let id = violations.check(NotificationTypeId::parse(
            "notification_type_id",
            request.notification_type_id,
        ));
        let schema = violations.check(text::payload_schema(
            "payload_schema_json",
            request.payload_schema_json.as_deref(),
        ));
        violations.finish()?;
        ok(self
            .registry
            .set_payload_schema(id.expect(CHECKED), schema.expect(CHECKED))
            .await?)
    }

    async fn upsert_callback(
        &self,
        request: Request<pb::UpsertCallbackRequest>,
    ) -> GrpcResult<pb::UpsertCallbackResponse> {
        let upsert = parse::upsert_callback(request.into_inner(), &self.url_policy)?;
        let (partner_id, notification_type) = (upsert.partner_id, upsert.notification_type);
        let (registration, created) = self.registry.upsert_callback(upsert).await?;
        tracing::info!(
            partner.id = %partner_id,
            notification.type = notification_type.get(),
            registration.id = %registration.id,
            created,
            "callback registered"
        );
        ok(pb::UpsertCallbackResponse {
            registration: Some(registration.into()),
            created,
        })
    }

    async fn get_callback(
        &self,
        request: Request<pb::GetCallbackRequest>,
    ) -> GrpcResult<pb::Registration> {
        let request = request.into_inner();
        let (partner, kind) = parse::target(&request.partner_id, request.notification_type)?;
        ok(self.registry.get_callback(partner, kind).await?)
    }

    async fn list_callbacks(
        &self,
        request: Request<pb::ListCallbacksRequest>,
    ) -> GrpcResult<pb::ListCallbacksResponse> {
        let (partner, filter, page) = parse::list_callbacks(request.into_inner())?;
        let page = self.registry.list_callbacks(partner, filter, page).await?;
        ok(pb::ListCallbacksResponse {
            page: Some(page_info(&page)),
            registrations: page.items.into_iter().map(Into::into).collect(),
        })
    }

    async fn list_error_states(
        &self,
        request: Request<pb::ListErrorStatesRequest>,
    ) -> GrpcResult<pb::ListCallbacksResponse> {
        let page = self
            .registry
            .list_error_states(parse::page(request.into_inner().page)?)
            .await?;
        ok(pb::ListCallbacksResponse {
            page: Some(page_info(&page)),
            registrations: page.items.into_iter().map(Into::into).collect(),
        })
    }

    async fn delete_callback(
        &self,
        request: Request<pb::DeleteCallbackRequest>,
    ) -> GrpcResult<pb::Registration> {
        let request = request.into_inner();
        let (partner, kind) = parse::target(&request.partner_id, request.notification_type)?;
        let registration = self.registry.delete_callback(partner, kind).await?;
        tracing::info!(partner.id = %partner, notification.type = kind.get(), "callback deleted");
        ok(registration)
    }

    async fn pause_callback(
        &self,
        request: Request<pb::PauseCallbackRequest>,
    ) -> GrpcResult<pb::Registration> {
        let request = request.into_inner();
        let (partner, kind) = parse::target(&request.partner_id, request.notification_type)?;
        let reason = text::optional("reason", request.reason.as_deref().unwrap_or_default(), 500)
            .map_err(RegistryError::from)?;
        let reason = Some(reason).filter(|r| !r.is_empty());
        let registration = self.registry.pause_callback(partner, kind, reason).await?;
        tracing::info!(partner.id = %partner, notification.type = kind.get(), "callback paused");
        ok(registration)
    }

    async fn resume_callback(
        &self,
        request: Request<pb::ResumeCallbackRequest>,
    ) -> GrpcResult<pb::Registration> {
        let request = request.into_inner();
        let (partner, kind) = parse::target(&request.partner_id, request.notification_type)?;
        let registration = self.registry.resume_callback(partner, kind).await?;
        tracing::info!(partner.id = %partner, notification.type = kind.get(), "callback resumed");
        ok(registration)
    }

    async fn get_signing_secret(
        &self,
        request: Request<pb::GetSigningSecretRequest>,
    ) -> GrpcResult<pb::SigningSecrets> {
        let request = request.into_inner();
        let (partner, kind) = parse::target(&request.partner_id, request.notification_type)?;
        ok(self.registry.get_signing_secrets(partner, kind).await?)
    }

    async fn rotate_signing_secret(
        &self,
        request: Request<pb::RotateSigningSecretRequest>,
    ) -> GrpcResult<pb::SigningSecrets> {
        let request = request.into_inner();
        let (partner, kind) = parse::target(&request.partner_id, request.notification_type)?;
        let keep = parse::previous_key_life(request.previous_expires_in_seconds)?;
        let secrets = self
            .registry
            .rotate_signing_secret(partner, kind, keep)
            .await?;
        tracing::info!(partner.id = %partner, notification.type = kind.get(), "signing secret rotated");
        ok(secrets)
    }

    async fn resolve_callback(
        &self,
        request: Request<pb::ResolveCallbackRequest>,
    ) -> GrpcResult<pb::ResolvedCallback> {
        let request = request.into_inner();
        let (partner, kind) = parse::target(&request.partner_id, request.notification_type)?;
        ok(self.registry.resolve_callback(partner, kind).await?)
    }

    async fn list_changes(
        &self,
        request: Request<pb::ListChangesRequest>,
    ) -> GrpcResult<pb::ListChangesResponse> {
        let after = request.into_inner().after_version;
        ok(self.registry.changes_since(after, MAX_CHANGES).await?)
    }

    async fn list_health_events(
        &self,
        request: Request<pb::ListHealthEventsRequest>,
    ) -> GrpcResult<pb::ListHealthEventsResponse> {
        let request = request.into_inner();
        let limit = match request.limit {
            0 => 100,
            n @ 1..=1000 => n,
            _ => {
                return Err(RegistryError::invalid("limit", "must be 0 to 1000").into());
            }
        };
        let events = self
            .registry
            .health_events_after(request.after_id, i64::from(limit))
            .await?;
        ok(pb::ListHealthEventsResponse {
            events: events.into_iter().map(Into::into).collect(),
        })
    }

    async fn record_delivery_outcome(
        &self,
        request: Request<pb::RecordDeliveryOutcomeRequest>,
    ) -> GrpcResult<pb::RecordDeliveryOutcomeResponse> {
        let report = parse::outcome_report(request.into_inner())?;
        let (registration, applied) = self.registry.record_outcome(report).await?;
        ok(pb::RecordDeliveryOutcomeResponse {
            registration: Some(registration.into()),
            applied,
        })
    }
}
