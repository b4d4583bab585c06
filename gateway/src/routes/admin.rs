//! Operator endpoints under `/v1/admin`, behind the admin key: partners
//! and their API keys (the catalogue is in `types`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use callbacks_proto::registry::v1 as pb;
use http::StatusCode;

use super::{ApiJson, ApiPath, ApiQuery, guid};
use crate::auth::Operator;
use crate::dto::{
    ApiKey, ApiKeyList, CreatePartnerBody, CreatedPartner, IssueApiKeyBody, IssuedApiKey, Partner,
    PartnerPage,
};
use crate::problem::{ApiError, Problem};
use crate::state::{AppState, grpc_request};

/// Create a partner.
///
/// Answers the partner and its first API key. The key's `token` is shown
/// here once and stored nowhere: hand it to the partner now.
#[utoipa::path(
    post,
    path = "/v1/admin/partners",
    tag = "operators",
    request_body(content = CreatePartnerBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = CreatedPartner),
        (status = 400, description = "Invalid body", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid admin key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("adminApiKey" = []))
)]
pub(crate) async fn create_partner(
    State(state): State<AppState>,
    _operator: Operator,
    ApiJson(body): ApiJson<CreatePartnerBody>,
) -> Result<impl IntoResponse, ApiError> {
    let created = state
        .registry()
        .create_partner(grpc_request(pb::CreatePartnerRequest {
            name: body.name,
            key_label: body.key_label.unwrap_or_default(),
        }))
        .await?
        .into_inner();
    let created = CreatedPartner {
        partner: created.partner.unwrap_or_default().into(),
        api_key: created.api_key.unwrap_or_default().into(),
    };
    Ok((StatusCode::CREATED, Json(created)))
}

/// List partners.
#[utoipa::path(
    get,
    path = "/v1/admin/partners",
    tag = "operators",
    params(
        ("pageNumber" = Option<u32>, Query, minimum = 1, maximum = 100000, description = "1-based page number (default 1)"),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1 to 100 (default 20)"),
    ),
    responses(
        (status = 200, description = "One page", body = PartnerPage),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid admin key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("adminApiKey" = []))
)]
pub(crate) async fn list_partners(
    State(state): State<AppState>,
    _operator: Operator,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
) -> Result<Json<PartnerPage>, ApiError> {
    let number = |name: &str| -> Result<u32, ApiError> {
        query.get(name).map_or(Ok(0), |raw| {
            raw.parse()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| ApiError::invalid_field(name, "must be a positive integer"))
        })
    };
    let page = pb::PageRequest {
        page_number: number("pageNumber")?,
        page_size: number("pageSize")?,
    };
    let response = state
        .registry()
        .list_partners(grpc_request(pb::ListPartnersRequest { page: Some(page) }))
        .await?
        .into_inner();
    let info = response.page.unwrap_or_default();
    Ok(Json(PartnerPage {
        results: response.partners.into_iter().map(Into::into).collect(),
        page_number: info.page_number,
        page_size: info.page_size,
        has_previous_page: info.has_previous_page,
        has_next_page: info.has_next_page,
    }))
}

/// One partner.
#[utoipa::path(
    get,
    path = "/v1/admin/partners/{partnerUniqueID}",
    tag = "operators",
    params(("partnerUniqueID" = uuid::Uuid, Path, description = "The partner's unique id")),
    responses(
        (status = 200, description = "The partner", body = Partner),
        (status = 400, description = "Malformed id or query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid admin key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown partner", body = Problem, content_type = "application/problem+json"),
    ),
    security(("adminApiKey" = []))
)]
pub(crate) async fn get_partner(
    State(state): State<AppState>,
    _operator: Operator,
    ApiPath(partner): ApiPath<String>,
) -> Result<Json<Partner>, ApiError> {
    let partner_id = guid("partnerUniqueID", &partner)?.to_string();
    let partner = state
        .registry()
        .get_partner(grpc_request(pb::GetPartnerRequest { partner_id }))
        .await?
        .into_inner();
    Ok(Json(partner.into()))
}

/// Issue an API key.
///
/// The `token` is shown here once and stored nowhere.
#[utoipa::path(
    post,
    path = "/v1/admin/partners/{partnerUniqueID}/keys",
    tag = "operators",
    params(("partnerUniqueID" = uuid::Uuid, Path, description = "The partner's unique id")),
    request_body(content = IssueApiKeyBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Issued", body = IssuedApiKey),
        (status = 400, description = "Invalid body", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid admin key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown partner", body = Problem, content_type = "application/problem+json"),
    ),
    security(("adminApiKey" = []))
)]
pub(crate) async fn issue_api_key(
    State(state): State<AppState>,
    _operator: Operator,
    ApiPath(partner): ApiPath<String>,
    ApiJson(body): ApiJson<IssueApiKeyBody>,
) -> Result<impl IntoResponse, ApiError> {
    let partner_id = guid("partnerUniqueID", &partner)?.to_string();
    let issued = state
        .registry()
        .issue_api_key(grpc_request(pb::IssueApiKeyRequest {
            partner_id,
            label: body.label.unwrap_or_default(),
        }))
        .await?
        .into_inner();
    let key: IssuedApiKey = issued.api_key.unwrap_or_default().into();
    Ok((StatusCode::CREATED, Json(key)))
}

/// List a partner's API keys.
///
/// Keys are listed by id, label and prefix; tokens are never shown again.
#[utoipa::path(
    get,
    path = "/v1/admin/partners/{partnerUniqueID}/keys",
    tag = "operators",
    params(
        ("partnerUniqueID" = uuid::Uuid, Path, description = "The partner's unique id"),
        ("includeRevoked" = Option<bool>, Query, description = "Include revoked keys (default false)"),
    ),
    responses(
        (status = 200, description = "The keys", body = ApiKeyList),
        (status = 400, description = "Malformed id or query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid admin key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown partner", body = Problem, content_type = "application/problem+json"),
    ),
    security(("adminApiKey" = []))
)]
pub(crate) async fn list_api_keys(
    State(state): State<AppState>,
    _operator: Operator,
    ApiPath(partner): ApiPath<String>,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
) -> Result<Json<ApiKeyList>, ApiError> {
    let partner_id = guid("partnerUniqueID", &partner)?.to_string();
    let include_revoked = match query.get("includeRevoked").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "includeRevoked",
                "must be true or false",
            ));
        }
    };
    let keys = state
        .registry()
        .list_api_keys(grpc_request(pb::ListApiKeysRequest {
            partner_id,
            include_revoked,
        }))
        .await?
        .into_inner()
        .keys;
    Ok(Json(ApiKeyList {
        results: keys.into_iter().map(Into::into).collect(),
    }))
}

/// Revoke an API key.
///
/// Takes effect at once, on every gateway replica: the key is refused from
/// the next request on.
#[utoipa::path(
    delete,
    path = "/v1/admin/partners/{partnerUniqueID}/keys/{keyId}",
    tag = "operators",
    params(
        ("partnerUniqueID" = uuid::Uuid, Path, description = "The partner's unique id"),
        ("keyId" = uuid::Uuid, Path, description = "The key's id"),
    ),
    responses(
        (status = 200, description = "Revoked", body = ApiKey),
        (status = 400, description = "Malformed id or query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid admin key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key for this partner", body = Problem, content_type = "application/problem+json"),
    ),
    security(("adminApiKey" = []))
)]
pub(crate) async fn revoke_api_key(
    State(state): State<AppState>,
    _operator: Operator,
    ApiPath((partner, key)): ApiPath<(String, String)>,
) -> Result<Json<ApiKey>, ApiError> {
    let partner_id = guid("partnerUniqueID", &partner)?.to_string();
    let key_id = guid("keyId", &key)?.to_string();
    let revoked = state
        .registry()
        .revoke_api_key(grpc_request(pb::RevokeApiKeyRequest { partner_id, key_id }))
        .await?
        .into_inner();
    // The cache is keyed by token, which we do not know here: forget all.
    state.auth_cache.clear();
    Ok(Json(revoked.into()))
}
