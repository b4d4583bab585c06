//! Erasing a partner's payloads: one event's, or all of them. Deliveries
//! and attempts stay, as metadata; a delivery still pending is cancelled.

use axum::Json;
use axum::extract::State;
use callbacks_proto::dispatcher::v1 as pb;

use super::{ApiPath, guid};
use crate::auth::{OwnPartner, Partner};
use crate::dto::Erasure;
use crate::problem::{ApiError, Problem};
use crate::state::{AppState, grpc_request};

/// Erase an event's payload.
///
/// Removes the payload of one of the partner's events (its `eventId`, as
/// the delivery shows it). The delivery and its attempts stay as a record
/// without the payload; a delivery still pending is cancelled, and a
/// redelivery is refused. Erasing an erased event changes nothing.
#[utoipa::path(
    delete,
    path = "/v1/callbacks/events/{eventId}/payload",
    tag = "deliveries",
    params(("eventId" = uuid::Uuid, Path, description = "The event's id")),
    responses(
        (status = 200, description = "Erased (or erased before: `erasedEvents` 0)", body = Erasure),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event of this partner", body = Problem, content_type = "application/problem+json"),
    ),
    security(("partnerApiKey" = []))
)]
pub(crate) async fn erase_event(
    State(state): State<AppState>,
    auth: Partner,
    ApiPath(event): ApiPath<String>,
) -> Result<Json<Erasure>, ApiError> {
    let event_id = guid("eventId", &event)?.to_string();
    let erased = state
        .dispatcher()?
        .erase_event(grpc_request(pb::EraseEventRequest {
            event_id,
            partner_id: Some(auth.partner_id.to_string()),
        }))
        .await?
        .into_inner();
    Ok(Json(erased.into()))
}

/// Erase all of a partner's payloads.
///
/// Removes the payload of every event of the partner, as erasing one event
/// does for each.
#[utoipa::path(
    delete,
    path = "/v1/callbacks/payloads/{partnerUniqueID}",
    tag = "deliveries",
    params(("partnerUniqueID" = uuid::Uuid, Path, description = "The partner's unique id")),
    responses(
        (status = 200, description = "Erased", body = Erasure),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key belongs to another partner", body = Problem, content_type = "application/problem+json"),
    ),
    security(("partnerApiKey" = []))
)]
pub(crate) async fn erase_payloads(
    State(state): State<AppState>,
    owner: OwnPartner,
    ApiPath(_partner): ApiPath<String>,
) -> Result<Json<Erasure>, ApiError> {
    let erased = state
        .dispatcher()?
        .erase_partner_payloads(grpc_request(pb::ErasePartnerPayloadsRequest {
            partner_id: owner.partner_id.to_string(),
        }))
        .await?
        .into_inner();
    Ok(Json(erased.into()))
}
