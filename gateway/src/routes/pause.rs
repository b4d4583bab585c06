//! Pausing a callback registration and resuming it: the registration keeps
//! its events, secret and history, and its deliveries wait until resumed.

use axum::Json;
use axum::extract::State;
use callbacks_proto::registry::v1 as pb;

use super::callbacks::target;
use super::{ApiJson, ApiPath};
use crate::auth::OwnPartner;
use crate::dto::{PauseBody, Registration};
use crate::problem::{ApiError, Problem};
use crate::state::{AppState, grpc_request};

/// Pause a callback.
///
/// Deliveries to the registration wait, unattempted, until it is resumed;
/// events are still stored for it and its secret and history stay. Resumed,
/// the waiting deliveries flow again within about 30 seconds. The body is
/// optional.
#[utoipa::path(
    post,
    path = "/{partnerUniqueID}/callbacks/{notificationType}/pause",
    tag = "callbacks",
    params(
        ("partnerUniqueID" = uuid::Uuid, Path, description = "The partner's unique id"),
        ("notificationType" = i32, Path, minimum = 1, maximum = 2147483647, description = "The notification type"),
    ),
    request_body(content = Option<PauseBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "Paused", body = Registration),
        (status = 400, description = "Malformed path, or a reason over 500 characters", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key belongs to another partner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No active registration", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already paused (the answer says since when)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "A body that is not JSON", body = Problem, content_type = "application/problem+json"),
    ),
    security(("partnerApiKey" = []))
)]
pub(crate) async fn pause_callback(
    State(state): State<AppState>,
    owner: OwnPartner,
    ApiPath((_partner, kind)): ApiPath<(String, String)>,
    body: Option<ApiJson<PauseBody>>,
) -> Result<Json<Registration>, ApiError> {
    let (partner_id, notification_type) = target(&owner, &kind)?;
    let registration = state
        .registry()
        .pause_callback(grpc_request(pb::PauseCallbackRequest {
            partner_id,
            notification_type,
            reason: body.and_then(|ApiJson(body)| body.reason),
        }))
        .await?
        .into_inner();
    Ok(Json(registration.into()))
}

/// Resume a paused callback.
///
/// The deliveries that waited while it was paused flow again within about
/// 30 seconds, then new ones as they come.
#[utoipa::path(
    post,
    path = "/{partnerUniqueID}/callbacks/{notificationType}/resume",
    tag = "callbacks",
    params(
        ("partnerUniqueID" = uuid::Uuid, Path, description = "The partner's unique id"),
        ("notificationType" = i32, Path, minimum = 1, maximum = 2147483647, description = "The notification type"),
    ),
    responses(
        (status = 200, description = "Resumed", body = Registration),
        (status = 400, description = "Malformed path", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key belongs to another partner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No active registration", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not paused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("partnerApiKey" = []))
)]
pub(crate) async fn resume_callback(
    State(state): State<AppState>,
    owner: OwnPartner,
    ApiPath((_partner, kind)): ApiPath<(String, String)>,
) -> Result<Json<Registration>, ApiError> {
    let (partner_id, notification_type) = target(&owner, &kind)?;
    let registration = state
        .registry()
        .resume_callback(grpc_request(pb::ResumeCallbackRequest {
            partner_id,
            notification_type,
        }))
        .await?
        .into_inner();
    Ok(Json(registration.into()))
}
