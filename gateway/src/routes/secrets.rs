//! A registration's signing keys: reading them, and rotating them with a
//! chosen life for the key replaced.

use axum::Json;
use axum::extract::State;
use callbacks_proto::registry::v1 as pb;

use super::callbacks::target;
use super::{ApiJson, ApiPath};
use crate::auth::OwnPartner;
use crate::dto::{RotateBody, SigningSecret};
use crate::problem::{ApiError, Problem};
use crate::state::{AppState, grpc_request};

/// The signing keys.
///
/// What to verify the `webhook-signature` header of our deliveries with:
/// the Standard Webhooks secret (`whsec_…`, scheme `hmac-sha256`, `v1`
/// signatures) or public key (`whpk_…`, scheme `ed25519`, `v1a`
/// signatures), and the keys earlier rotations left valid.
#[utoipa::path(
    get,
    path = "/{partnerUniqueID}/callbacks/{notificationType}/secret",
    tag = "callbacks",
    params(
        ("partnerUniqueID" = uuid::Uuid, Path, description = "The partner's unique id"),
        ("notificationType" = i32, Path, minimum = 1, maximum = 2147483647, description = "The notification type"),
    ),
    responses(
        (status = 200, description = "The secret", body = SigningSecret),
        (status = 400, description = "Malformed path", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key belongs to another partner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No active registration", body = Problem, content_type = "application/problem+json"),
    ),
    security(("partnerApiKey" = []))
)]
pub(crate) async fn get_secret(
    State(state): State<AppState>,
    owner: OwnPartner,
    ApiPath((_partner, kind)): ApiPath<(String, String)>,
) -> Result<Json<SigningSecret>, ApiError> {
    let (partner_id, notification_type) = target(&owner, &kind)?;
    let secrets = state
        .registry()
        .get_signing_secret(grpc_request(pb::GetSigningSecretRequest {
            partner_id,
            notification_type,
        }))
        .await?
        .into_inner();
    Ok(Json(secrets.into()))
}

/// Rotate the signing key.
///
/// Makes a new key of the registration's scheme. The replaced one keeps
/// signing beside it for `previousExpiresInSeconds` (24 h when left out;
/// 0 drops it at once, as after a leak), and the keys of earlier rotations
/// still valid go on too, so receivers switch without downtime. At most 5
/// previous keys are valid at once. The body is optional.
#[utoipa::path(
    post,
    path = "/{partnerUniqueID}/callbacks/{notificationType}/secret/rotate",
    tag = "callbacks",
    params(
        ("partnerUniqueID" = uuid::Uuid, Path, description = "The partner's unique id"),
        ("notificationType" = i32, Path, minimum = 1, maximum = 2147483647, description = "The notification type"),
    ),
    request_body(content = Option<RotateBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "The new key, and the previous ones still valid", body = SigningSecret),
        (status = 400, description = "Malformed path, or `previousExpiresInSeconds` over a week", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key belongs to another partner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No active registration", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "5 previous keys are still valid (the answer says when the next expires)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "A body that is not JSON", body = Problem, content_type = "application/problem+json"),
    ),
    security(("partnerApiKey" = []))
)]
pub(crate) async fn rotate_secret(
    State(state): State<AppState>,
    owner: OwnPartner,
    ApiPath((_partner, kind)): ApiPath<(String, String)>,
    body: Option<ApiJson<RotateBody>>,
) -> Result<Json<SigningSecret>, ApiError> {
    let (partner_id, notification_type) = target(&owner, &kind)?;
    let secrets = state
        .registry()
        .rotate_signing_secret(grpc_request(pb::RotateSigningSecretRequest {
            partner_id,
            notification_type,
            previous_expires_in_seconds: body
                .and_then(|ApiJson(body)| body.previous_expires_in_seconds),
        }))
        .await?
        .into_inner();
    Ok(Json(secrets.into()))
}
