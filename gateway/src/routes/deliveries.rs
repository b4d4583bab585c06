//! The partner's delivery log: one delivery with its attempts, a type's
//! deliveries page by page, and redelivery. A delivery that is not the
//! caller's is "not found", never shown.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use callbacks_proto::dispatcher::v1 as pb;
use http::StatusCode;

use super::{ApiPath, ApiQuery, guid, type_id};
use crate::auth::{OwnPartner, Partner};
use crate::dto::{Delivery, DeliveryPage};
use crate::problem::{ApiError, InvalidParam, Problem};
use crate::schemas::StatusFilter;
use crate::state::{AppState, grpc_request};

/// One delivery with its attempts.
#[utoipa::path(
    get,
    path = "/v1/callbacks/deliveries/{deliveryId}",
    tag = "deliveries",
    params(("deliveryId" = uuid::Uuid, Path, description = "The delivery's id, as answered by the echo route or listed")),
    responses(
        (status = 200, description = "The delivery", body = Delivery),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such delivery of this partner", body = Problem, content_type = "application/problem+json"),
    ),
    security(("partnerApiKey" = []))
)]
pub(crate) async fn get_delivery(
    State(state): State<AppState>,
    auth: Partner,
    ApiPath(delivery): ApiPath<String>,
) -> Result<Json<Delivery>, ApiError> {
    let delivery_id = guid("deliveryId", &delivery)?.to_string();
    let delivery = state
        .dispatcher()?
        .get_delivery(grpc_request(pb::GetDeliveryRequest {
            delivery_id,
            partner_id: Some(auth.partner_id.to_string()),
        }))
        .await?
        .into_inner();
    Ok(Json(delivery.into()))
}

/// Redeliver.
///
/// Schedules a delivered, failed or cancelled delivery again, as a new
/// series of attempts. 409 while it is still pending.
#[utoipa::path(
    post,
    path = "/v1/callbacks/deliveries/{deliveryId}/redeliver",
    tag = "deliveries",
    params(("deliveryId" = uuid::Uuid, Path, description = "The delivery's id")),
    responses(
        (status = 202, description = "Scheduled again", body = Delivery),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such delivery of this partner", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Still pending", body = Problem, content_type = "application/problem+json"),
    ),
    security(("partnerApiKey" = []))
)]
pub(crate) async fn redeliver(
    State(state): State<AppState>,
    auth: Partner,
    ApiPath(delivery): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let delivery_id = guid("deliveryId", &delivery)?.to_string();
    let delivery = state
        .dispatcher()?
        .redeliver(grpc_request(pb::RedeliverRequest {
            delivery_id,
            partner_id: Some(auth.partner_id.to_string()),
        }))
        .await?
        .into_inner();
    let delivery: Delivery = delivery.into();
    Ok((StatusCode::ACCEPTED, Json(delivery)))
}

/// List deliveries of a type.
///
/// Newest first, without their attempts (read one delivery for those).
#[utoipa::path(
    get,
    path = "/{partnerUniqueID}/callbacks/{notificationType}/deliveries",
    tag = "deliveries",
    params(
        ("partnerUniqueID" = uuid::Uuid, Path, description = "The partner's unique id"),
        ("notificationType" = i32, Path, minimum = 1, maximum = 2147483647, description = "The notification type"),
        ("status" = Option<StatusFilter>, Query, description = "Only deliveries in this state"),
        ("since" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "Only deliveries of events published at or after this time (RFC 3339)"),
        ("until" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "Only deliveries of events published before this time (RFC 3339)"),
        ("pageNumber" = Option<u32>, Query, minimum = 1, maximum = 100000, description = "1-based page number (default 1)"),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1 to 100 (default 20)"),
    ),
    responses(
        (status = 200, description = "One page", body = DeliveryPage),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key belongs to another partner", body = Problem, content_type = "application/problem+json"),
    ),
    security(("partnerApiKey" = []))
)]
pub(crate) async fn list_deliveries(
    State(state): State<AppState>,
    owner: OwnPartner,
    ApiPath((_partner, kind)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let notification_type = type_id("notificationType", &kind)?;
    let request = list_request(owner.partner_id.to_string(), notification_type, &query)?;
    let page = state
        .dispatcher()?
        .list_deliveries(grpc_request(request))
        .await?
        .into_inner();
    Ok(Json(DeliveryPage {
        results: page.deliveries.into_iter().map(Into::into).collect(),
        page_number: page.page_number,
        page_size: page.page_size,
        has_previous_page: page.has_previous_page,
        has_next_page: page.has_next_page,
    }))
}

/// The dispatcher's request for a page of deliveries, from the query's
/// `status`, `since`, `until`, `pageNumber` and `pageSize` (each reported
/// when invalid).
fn list_request(
    partner_id: String,
    notification_type: i32,
    query: &HashMap<String, String>,
) -> Result<pb::ListDeliveriesRequest, ApiError> {
    let mut invalid = Vec::new();
    let status = match query.get("status").map(String::as_str) {
        None => None,
        Some("pending") => Some(pb::DeliveryStatus::Pending),
        Some("delivered") => Some(pb::DeliveryStatus::Delivered),
        Some("failed") => Some(pb::DeliveryStatus::Failed),
        Some("cancelled") => Some(pb::DeliveryStatus::Cancelled),
        Some(_) => {
            invalid.push(InvalidParam {
                name: "status".into(),
                reason: "must be pending, delivered, failed or cancelled".into(),
            });
            None
        }
    };
    let mut number = |name: &str| match query.get(name) {
        None => 0,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .unwrap_or_else(|| {
                invalid.push(InvalidParam {
                    name: name.into(),
                    reason: "must be a positive integer".into(),
                });
                0
            }),
    };
    let page_number = number("pageNumber");
    let page_size = number("pageSize");
    let (since, until) = time_range(query, &mut invalid);
    if !invalid.is_empty() {
        return Err(ApiError::invalid(invalid));
    }
    Ok(pb::ListDeliveriesRequest {
        partner_id,
        notification_type: Some(notification_type),
        status: status.map(Into::into),
        page_number,
        page_size,
        since: since.map(super::recoveries::timestamp),
        until: until.map(super::recoveries::timestamp),
    })
}

/// The query's `since` and `until`, each an RFC 3339 time (a range that
/// ends before it starts lists nothing, as Stripe's `created` filters do);
/// what is wrong pushed to `invalid`.
fn time_range(
    query: &HashMap<String, String>,
    invalid: &mut Vec<InvalidParam>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let mut moment = |name: &str| {
        let raw = query.get(name)?;
        match DateTime::parse_from_rfc3339(raw) {
            Ok(at) => Some(at.with_timezone(&Utc)),
            Err(_) => {
                invalid.push(InvalidParam {
                    name: name.into(),
                    reason: "must be an RFC 3339 time, such as 2026-12-07T10:00:00Z".into(),
                });
                None
            }
        }
    };
    (moment("since"), moment("until"))
}
