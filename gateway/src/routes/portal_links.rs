//! Portal links: an operator mints, for one partner, a link that opens the
//! partner portal (and nothing else) until it expires. The link carries a
//! key of its own, never the partner's API key; it is listed with the
//! partner's keys and revoked like one.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use callbacks_proto::registry::v1 as pb;
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, ApiPath, guid};
use crate::auth::Operator;
use crate::problem::{ApiError, Problem};
use crate::state::{AppState, grpc_request};

/// `POST /v1/admin/partners/{partnerUniqueID}/portal-links`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PortalLinkBody {
    /// How long the link works, in seconds: 60 to 86400 (default 3600).
    #[schema(minimum = 60, maximum = 86400)]
    pub expires_in_seconds: Option<u32>,
}

/// A portal link. Send `link` (on this gateway's address) to the partner:
/// it is shown here once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PortalLink {
    /// The key behind the link: revoke it with
    /// `DELETE /v1/admin/partners/{partnerUniqueID}/keys/{keyId}`.
    #[schema(format = Uuid)]
    pub key_id: String,
    /// The path to open, with its token.
    pub link: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Mint a portal link for a partner.
///
/// The link opens the partner portal as that partner until it expires or its
/// key is revoked; the REST API refuses its token.
#[utoipa::path(
    post,
    path = "/v1/admin/partners/{partnerUniqueID}/portal-links",
    tag = "operators",
    params(("partnerUniqueID" = uuid::Uuid, Path, description = "The partner's unique id")),
    request_body(content = PortalLinkBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Minted", body = PortalLink),
        (status = 400, description = "Invalid body or id", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid admin key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown or disabled partner", body = Problem, content_type = "application/problem+json"),
    ),
    security(("adminApiKey" = []))
)]
pub(crate) async fn mint_portal_link(
    State(state): State<AppState>,
    _operator: Operator,
    ApiPath(partner): ApiPath<String>,
    ApiJson(body): ApiJson<PortalLinkBody>,
) -> Result<impl IntoResponse, ApiError> {
    let partner_id = guid("partnerUniqueID", &partner)?.to_string();
    let seconds = body.expires_in_seconds.unwrap_or(3600);
    if !(60..=86_400).contains(&seconds) {
        return Err(ApiError::invalid_field(
            "expiresInSeconds",
            "must be between 60 and 86400 (a day)",
        ));
    }
    let issued = state
        .registry()
        .issue_portal_link(grpc_request(pb::IssuePortalLinkRequest {
            partner_id,
            expires_in_seconds: seconds,
        }))
        .await?
        .into_inner()
        .api_key
        .unwrap_or_default();
    let key = issued.key.unwrap_or_default();
    let link = format!("/portal/link?token={}", issued.token);
    Ok((
        StatusCode::CREATED,
        Json(PortalLink {
            key_id: key.key_id,
            link,
            expires_at: key.expires_at.and_then(|t| {
                DateTime::<Utc>::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
            }),
        }),
    ))
}
