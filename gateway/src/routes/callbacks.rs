//! A partner's callback registrations: create or update, list, get, delete
//! (soft).

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use callbacks_proto::registry::v1 as pb;
use http::StatusCode;

use super::{ApiJson, ApiPath, ApiQuery, guid, type_id};
use crate::auth::{OwnPartner, Partner};
use crate::dto::{Registration, RegistrationPage, UpsertCallbackBody};
use crate::problem::{ApiError, InvalidParam, Problem};
use crate::schemas::{IsActive, UpsertCallbackRequest};
use crate::state::{AppState, grpc_request};

/// The partner's id and the parsed `{notificationType}`.
pub(super) fn target(owner: &OwnPartner, kind: &str) -> Result<(String, i32), ApiError> {
    Ok((
        owner.partner_id.to_string(),
        type_id("notificationType", kind)?,
    ))
}

/// Create or update a callback.
///
/// Registers the URL that receives the partner's notifications of this type,
/// or replaces the URL and credentials of the active registration. Changing
/// the URL clears the error state.
#[utoipa::path(
    put,
    path = "/{partnerUniqueID}/callbacks/{notificationType}",
    tag = "callbacks",
    params(
        ("partnerUniqueID" = uuid::Uuid, Path, description = "The partner's unique id"),
        ("notificationType" = i32, Path, minimum = 1, maximum = 2147483647, description = "The notification type, e.g. 5"),
    ),
    request_body(content = UpsertCallbackRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = Registration),
        (status = 200, description = "Updated", body = Registration),
        (status = 400, description = "Invalid body, URL or unsupported type", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key belongs to another partner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown partner", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
    ),
    security(("partnerApiKey" = []))
)]
pub(crate) async fn put_callback(
    State(state): State<AppState>,
    owner: OwnPartner,
    ApiPath((_partner, kind)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<UpsertCallbackBody>,
) -> Result<impl IntoResponse, ApiError> {
    let (partner_id, notification_type) = target(&owner, &kind)?;
    let response = state
        .registry()
        .upsert_callback(grpc_request(pb::UpsertCallbackRequest {
            partner_id,
            notification_type,
            callback_url: body.call_back_url,
            callback_user_name: body.call_back_user_name,
            callback_password: body.call_back_password,
            merchant_id: body.merchant_id,
            retry_policy: body.retry_policy.map(Into::into),
            signature_scheme: body
                .signature_scheme
                .map(|scheme| pb::SignatureScheme::from(scheme).into()),
        }))
        .await?
        .into_inner();
    let status = if response.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let registration: Registration = response.registration.unwrap_or_default().into();
    Ok((status, Json(registration)))
}

/// One active registration.
#[utoipa::path(
    get,
    path = "/{partnerUniqueID}/callbacks/{notificationType}",
    tag = "callbacks",
    params(
        ("partnerUniqueID" = uuid::Uuid, Path, description = "The partner's unique id"),
        ("notificationType" = i32, Path, minimum = 1, maximum = 2147483647, description = "The notification type"),
    ),
    responses(
        (status = 200, description = "The active registration", body = Registration),
        (status = 400, description = "Malformed path", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key belongs to another partner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No active registration", body = Problem, content_type = "application/problem+json"),
    ),
    security(("partnerApiKey" = []))
)]
pub(crate) async fn get_callback(
    State(state): State<AppState>,
    owner: OwnPartner,
    ApiPath((_partner, kind)): ApiPath<(String, String)>,
) -> Result<Json<Registration>, ApiError> {
    let (partner_id, notification_type) = target(&owner, &kind)?;
    let registration = state
        .registry()
        .get_callback(grpc_request(pb::GetCallbackRequest {
            partner_id,
            notification_type,
        }))
        .await?
        .into_inner();
    Ok(Json(registration.into()))
}

/// Delete a callback.
///
/// A soft delete: the registration stays in the list with `isActive=false`
/// and `deactivatedAt`, and nothing more is delivered to it.
#[utoipa::path(
    delete,
    path = "/{partnerUniqueID}/callbacks/{notificationType}",
    tag = "callbacks",
    params(
        ("partnerUniqueID" = uuid::Uuid, Path, description = "The partner's unique id"),
        ("notificationType" = i32, Path, minimum = 1, maximum = 2147483647, description = "The notification type"),
    ),
    responses(
        (status = 204, description = "Deactivated"),
        (status = 400, description = "Malformed path", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key belongs to another partner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No active registration", body = Problem, content_type = "application/problem+json"),
    ),
    security(("partnerApiKey" = []))
)]
pub(crate) async fn delete_callback(
    State(state): State<AppState>,
    owner: OwnPartner,
    ApiPath((_partner, kind)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (partner_id, notification_type) = target(&owner, &kind)?;
    state
        .registry()
        .delete_callback(grpc_request(pb::DeleteCallbackRequest {
            partner_id,
            notification_type,
        }))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Parses the list's query parameters, reporting every bad one at once.
fn list_query(
    partner_id: String,
    query: &HashMap<String, String>,
) -> Result<pb::ListCallbacksRequest, ApiError> {
    let mut invalid = Vec::new();
    let mut bad = |name: &str, reason: &str| {
        invalid.push(InvalidParam {
            name: name.to_owned(),
            reason: reason.to_owned(),
        })
    };
    // Seed 000: the list is of the "currently active" subscriptions; a
    // registration asked for by id is found whatever its state.
    let is_active = match query.get("isActive").map(String::as_str) {
        None if query.contains_key("registrationId") => None,
        None | Some("true") => Some(true),
        Some("false") => Some(false),
        Some("all") => None,
        Some(_) => {
            bad("isActive", "must be true, false or all");
            None
        }
    };
    let registration_id = match query.get("registrationId") {
        None => None,
        Some(raw) => match uuid::Uuid::try_parse(raw) {
            Ok(id) => Some(id.to_string()),
            Err(_) => {
                bad("registrationId", "must be a GUID");
                None
            }
        },
    };
    let merchant_id = query.get("merchantId").cloned();
    let mut number = |name: &str, default: u32| match query.get(name) {
        None => default,
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if n >= 1 => n,
            _ => {
                bad(name, "must be a positive integer");
                default
            }
        },
    };
    let page_number = number("pageNumber", 1);
    let page_size = number("pageSize", 20);
    if !invalid.is_empty() {
        return Err(ApiError::invalid(invalid));
    }
    Ok(pb::ListCallbacksRequest {
        partner_id,
        is_active,
        registration_id,
        merchant_id,
        page: Some(pb::PageRequest {
            page_number,
            page_size,
        }),
    })
}

/// List a partner's callbacks.
///
/// The active registrations, oldest first, a page at a time; deactivated
/// ones with `isActive=false`, both with `isActive=all`.
#[utoipa::path(
    get,
    path = "/{partnerUniqueID}/callbacks",
    tag = "callbacks",
    params(
        ("partnerUniqueID" = uuid::Uuid, Path, description = "The partner's unique id"),
        ("isActive" = Option<IsActive>, Query, description = "`true` (the default): active registrations; `false`: deactivated ones; `all`: both. With `registrationId` and no `isActive`, the registration whatever its state"),
        ("registrationId" = Option<uuid::Uuid>, Query, description = "Only this registration"),
        ("merchantId" = Option<String>, Query, min_length = 1, max_length = 64, pattern = r"^[\x21-\x7e]+$", description = "Only registrations for this merchant (seed 003)"),
        ("pageNumber" = Option<u32>, Query, minimum = 1, maximum = 100000, description = "1-based page number (default 1)"),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1 to 100 (default 20)"),
    ),
    responses(
        (status = 200, description = "One page", body = RegistrationPage),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key belongs to another partner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown partner", body = Problem, content_type = "application/problem+json"),
    ),
    security(("partnerApiKey" = []))
)]
pub(crate) async fn list_callbacks(
    State(state): State<AppState>,
    owner: OwnPartner,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
) -> Result<Json<RegistrationPage>, ApiError> {
    let request = list_query(owner.partner_id.to_string(), &query)?;
    let response = state
        .registry()
        .list_callbacks(grpc_request(request))
        .await?
        .into_inner();
    let page = response.page.unwrap_or_default();
    Ok(Json(RegistrationPage {
        results: response.registrations.into_iter().map(Into::into).collect(),
        page_number: page.page_number,
        page_size: page.page_size,
        has_previous_page: page.has_previous_page,
        has_next_page: page.has_next_page,
    }))
}

/// One registration, by its id.
///
/// Active or deactivated (seed 003's `registrationId`).
#[utoipa::path(
    get,
    path = "/v1/callbacks/registrations/{registrationId}",
    tag = "callbacks",
    params(("registrationId" = uuid::Uuid, Path, description = "The registration's id")),
    responses(
        (status = 200, description = "The registration", body = Registration),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such registration of this partner", body = Problem, content_type = "application/problem+json"),
    ),
    security(("partnerApiKey" = []))
)]
pub(crate) async fn get_registration(
    State(state): State<AppState>,
    auth: Partner,
    ApiPath(registration): ApiPath<String>,
) -> Result<Json<Registration>, ApiError> {
    let registration_id = guid("registrationId", &registration)?;
    let found = state
        .registry()
        .list_callbacks(grpc_request(pb::ListCallbacksRequest {
            partner_id: auth.partner_id.to_string(),
            is_active: None,
            registration_id: Some(registration_id.to_string()),
            page: None,
            merchant_id: None,
        }))
        .await?
        .into_inner()
        .registrations
        .into_iter()
        .next()
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "this partner has no registration {registration_id}"
            ))
        })?;
    Ok(Json(found.into()))
}
