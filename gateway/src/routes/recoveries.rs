//! Recovery in bulk, for a partner's own deliveries: a dry run that says
//! how many would be sent and from when to when, a job that sends them at
//! a pace, and its progress.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use callbacks_proto::dispatcher::v1 as pb;
use http::StatusCode;

use super::{ApiJson, ApiPath, guid};
use crate::auth::OwnPartner;
use crate::dto::{RecoverBody, RecoveryView};
use crate::problem::{ApiError, Problem};
use crate::state::{AppState, grpc_request};

/// Recover failed deliveries.
///
/// Sends the partner's failed deliveries (and cancelled ones with
/// `includeCancelled`) whose events were published in `[since, until)`
/// again, each as a new series of attempts, optionally of one notification
/// type. With `dryRun`, answers how many deliveries would be sent and the
/// publish times of the first and the last, and changes nothing. Otherwise
/// starts a job that sends them at a steady pace (202); read its progress
/// at `statusUrl`.
#[utoipa::path(
    post,
    path = "/v1/callbacks/recoveries/{partnerUniqueID}",
    tag = "deliveries",
    params(("partnerUniqueID" = uuid::Uuid, Path, description = "The partner's unique id")),
    request_body(content = RecoverBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The dry run: what would be sent", body = RecoveryView),
        (status = 202, description = "The job, started", body = RecoveryView),
        (status = 400, description = "A malformed body, an empty range (until not after since) or one over 90 days", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key belongs to another partner", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
    ),
    security(("partnerApiKey" = []))
)]
pub(crate) async fn recover(
    State(state): State<AppState>,
    owner: OwnPartner,
    ApiPath(_partner): ApiPath<String>,
    ApiJson(body): ApiJson<RecoverBody>,
) -> Result<impl IntoResponse, ApiError> {
    let dry_run = body.dry_run;
    let recovery = state
        .dispatcher()?
        .recover_deliveries(grpc_request(pb::RecoverDeliveriesRequest {
            partner_id: owner.partner_id.to_string(),
            notification_type: body.notification_type,
            since: Some(timestamp(body.since)),
            until: Some(timestamp(body.until)),
            include_cancelled: body.include_cancelled,
            dry_run,
        }))
        .await?
        .into_inner();
    let status = if dry_run {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(RecoveryView::from(recovery))))
}

/// A recovery's progress.
#[utoipa::path(
    get,
    path = "/v1/callbacks/recoveries/{partnerUniqueID}/{recoveryId}",
    tag = "deliveries",
    params(
        ("partnerUniqueID" = uuid::Uuid, Path, description = "The partner's unique id"),
        ("recoveryId" = uuid::Uuid, Path, description = "The recovery's id"),
    ),
    responses(
        (status = 200, description = "The job and how far it is", body = RecoveryView),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key belongs to another partner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such recovery of this partner", body = Problem, content_type = "application/problem+json"),
    ),
    security(("partnerApiKey" = []))
)]
pub(crate) async fn get_recovery(
    State(state): State<AppState>,
    owner: OwnPartner,
    ApiPath((_partner, recovery)): ApiPath<(String, String)>,
) -> Result<Json<RecoveryView>, ApiError> {
    let recovery_id = guid("recoveryId", &recovery)?.to_string();
    let recovery = state
        .dispatcher()?
        .get_recovery(grpc_request(pb::GetRecoveryRequest {
            recovery_id,
            partner_id: Some(owner.partner_id.to_string()),
        }))
        .await?
        .into_inner();
    Ok(Json(recovery.into()))
}

pub(crate) fn timestamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    std::time::SystemTime::from(at).into()
}
