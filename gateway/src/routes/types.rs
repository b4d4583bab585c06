//! The notification-type catalogue: partners read it (each type's payload
//! schema is the payload format the seeds' "API Reference" promises);
//! operators add types and set or remove their payload schemas under
//! `/v1/admin`.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use callbacks_proto::registry::v1 as pb;
use http::StatusCode;

use super::{ApiJson, ApiPath, type_id};
use crate::auth::{Operator, Partner};
use crate::dto::{CreateNotificationTypeBody, NotificationType, NotificationTypeList};
use crate::problem::{ApiError, Problem};
use crate::state::{AppState, grpc_request};

async fn catalogue(state: &AppState) -> Result<Json<NotificationTypeList>, ApiError> {
    let types = state
        .registry()
        .list_notification_types(grpc_request(pb::ListNotificationTypesRequest {}))
        .await?
        .into_inner()
        .notification_types;
    Ok(Json(NotificationTypeList {
        results: types.into_iter().map(Into::into).collect(),
    }))
}

/// List the notification types, with the payload schema of each.
///
/// A type's `payloadSchema` is the JSON Schema its events' payloads, and
/// the test (echo) bodies sent for it, satisfy.
#[utoipa::path(
    get,
    path = "/v1/callbacks/notification-types",
    tag = "callbacks",
    responses(
        (status = 200, description = "The catalogue", body = NotificationTypeList),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("partnerApiKey" = []))
)]
pub(crate) async fn list_for_partners(
    State(state): State<AppState>,
    _partner: Partner,
) -> Result<Json<NotificationTypeList>, ApiError> {
    catalogue(&state).await
}

/// List notification types.
#[utoipa::path(
    get,
    path = "/v1/admin/notification-types",
    tag = "operators",
    responses(
        (status = 200, description = "The catalogue", body = NotificationTypeList),
        (status = 401, description = "Missing or invalid admin key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("adminApiKey" = []))
)]
pub(crate) async fn list_notification_types(
    State(state): State<AppState>,
    _operator: Operator,
) -> Result<Json<NotificationTypeList>, ApiError> {
    catalogue(&state).await
}

/// Add a notification type.
#[utoipa::path(
    post,
    path = "/v1/admin/notification-types",
    tag = "operators",
    request_body(content = CreateNotificationTypeBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Added", body = NotificationType),
        (status = 400, description = "Invalid body, or a payload schema that is not a JSON Schema", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid admin key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The id or the name is taken", body = Problem, content_type = "application/problem+json"),
    ),
    security(("adminApiKey" = []))
)]
pub(crate) async fn create_notification_type(
    State(state): State<AppState>,
    _operator: Operator,
    ApiJson(body): ApiJson<CreateNotificationTypeBody>,
) -> Result<impl IntoResponse, ApiError> {
    let created = state
        .registry()
        .create_notification_type(grpc_request(pb::CreateNotificationTypeRequest {
            notification_type_id: body.notification_type_id,
            name: body.name,
            description: body.description,
            echoable: body.echoable,
            payload_schema_json: body.payload_schema.map(|schema| schema.to_string()),
        }))
        .await?
        .into_inner();
    let created: NotificationType = created.into();
    Ok((StatusCode::CREATED, Json(created)))
}

async fn set_schema(
    state: &AppState,
    id: &str,
    schema: Option<serde_json::Value>,
) -> Result<Json<NotificationType>, ApiError> {
    let notification_type_id = type_id("notificationTypeId", id)?;
    let updated = state
        .registry()
        .set_payload_schema(grpc_request(pb::SetPayloadSchemaRequest {
            notification_type_id,
            payload_schema_json: schema.map(|schema| schema.to_string()),
        }))
        .await?
        .into_inner();
    Ok(Json(updated.into()))
}

/// Set a notification type's payload schema.
///
/// The body is a JSON Schema (draft 2020-12 unless its `$schema` names
/// another), self-contained: references to other documents are refused.
/// Every publish of the type on every dispatcher applies it within a
/// second of this answer.
#[utoipa::path(
    put,
    path = "/v1/admin/notification-types/{notificationTypeId}/payload-schema",
    tag = "operators",
    params(("notificationTypeId" = i32, Path, minimum = 1, maximum = 2147483647, description = "The notification type")),
    request_body(content = Object, content_type = "application/json", description = "The JSON Schema"),
    responses(
        (status = 200, description = "Set", body = NotificationType),
        (status = 400, description = "Not a JSON Schema the registry can compile", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid admin key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such notification type", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
    ),
    security(("adminApiKey" = []))
)]
pub(crate) async fn put_payload_schema(
    State(state): State<AppState>,
    _operator: Operator,
    ApiPath(id): ApiPath<String>,
    ApiJson(schema): ApiJson<serde_json::Value>,
) -> Result<Json<NotificationType>, ApiError> {
    set_schema(&state, &id, Some(schema)).await
}

/// Remove a notification type's payload schema: any JSON payload is
/// accepted again.
#[utoipa::path(
    delete,
    path = "/v1/admin/notification-types/{notificationTypeId}/payload-schema",
    tag = "operators",
    params(("notificationTypeId" = i32, Path, minimum = 1, maximum = 2147483647, description = "The notification type")),
    responses(
        (status = 200, description = "Removed", body = NotificationType),
        (status = 400, description = "Invalid notificationTypeId", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid admin key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such notification type", body = Problem, content_type = "application/problem+json"),
    ),
    security(("adminApiKey" = []))
)]
pub(crate) async fn delete_payload_schema(
    State(state): State<AppState>,
    _operator: Operator,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<NotificationType>, ApiError> {
    set_schema(&state, &id, None).await
}
