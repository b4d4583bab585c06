//! Test (echo) notifications: `POST /v1/callbacks/echo/{partnerUniqueID}/{notificationTypeID}`.
//!
//! The body (the seed's rawBody) is what the partner's endpoint will
//! receive, byte for byte. It must be JSON, and satisfy the type's payload
//! schema: the dispatcher applies it, as it does to every published event,
//! and names each violation (for the seeded types 5, 6 and 7: exactly one
//! of `processUniqueId` and `simulationUniqueId`, or a 400).

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use callbacks_proto::dispatcher::v1 as dispatch;
use callbacks_proto::registry::v1 as pb;
use http::{HeaderMap, StatusCode, header};
use tonic::Code;

use super::{ApiPath, RawBody, type_id};
use crate::auth::OwnPartner;
use crate::dto::EchoAccepted;
use crate::problem::{ApiError, Problem};
use crate::schemas::EchoRawBody;
use crate::state::{AppState, grpc_request};

/// Checks that the rawBody is JSON, without changing it; its type's
/// schema is applied where every payload's is.
pub fn check_raw_body(headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        });
    if !is_json {
        return Err(ApiError::unsupported_media_type());
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .map(drop)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))
}

/// Fire a test notification.
///
/// Sends the request body, unchanged, to the partner's registered callback
/// URL as a test notification of the given type, signed and with
/// credentials like any delivery, and marked with the header
/// `partner-callbacks-test: true` (real events never carry it). The body
/// must satisfy the type's payload
/// schema (`GET /v1/callbacks/notification-types`); for the seeded types 5,
/// 6 and 7, exactly one of `processUniqueId` and `simulationUniqueId` is given.
#[utoipa::path(
    post,
    path = "/v1/callbacks/echo/{partnerUniqueID}/{notificationTypeID}",
    tag = "echo",
    params(
        ("partnerUniqueID" = uuid::Uuid, Path, description = "The partner's unique id"),
        ("notificationTypeID" = i32, Path, minimum = 1, maximum = 2147483647, description = "An echo-able notification type (5, 6 or 7)"),
    ),
    request_body(
        content = EchoRawBody,
        content_type = "application/json",
        description = "The rawBody to deliver, satisfying the type's payload schema (for types 5, 6 and 7: a JSON object with exactly one of processUniqueId and simulationUniqueId)",
    ),
    responses(
        (status = 202, description = "Accepted for delivery", body = EchoAccepted),
        (status = 400, description = "Not JSON, a body that breaks the type's payload schema (each violation named), or a type that is not echo-able", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key belongs to another partner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No active registration for the type", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Delivery is not available", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The dispatcher could not confirm whether the echo was stored (`outcome-unknown`): it may still be delivered", body = Problem, content_type = "application/problem+json"),
    ),
    security(("partnerApiKey" = []))
)]
pub(crate) async fn echo(
    State(state): State<AppState>,
    owner: OwnPartner,
    ApiPath((_partner, kind)): ApiPath<(String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<impl IntoResponse, ApiError> {
    let partner = owner.partner_id;
    let notification_type = type_id("notificationTypeID", &kind)?;
    check_raw_body(&headers, &body)?;
    state.limits.echo(partner)?;

    let mut registry = state.registry();
    let catalogue = registry
        .get_notification_type(grpc_request(pb::GetNotificationTypeRequest {
            notification_type_id: notification_type,
        }))
        .await;
    match catalogue {
        Ok(t) if t.get_ref().echoable => {}
        Ok(_) => {
            return Err(ApiError::invalid_field(
                "notificationTypeID",
                format!("notification type {notification_type} cannot be echoed"),
            ));
        }
        Err(status) if status.code() == Code::NotFound => {
            return Err(ApiError::invalid_field(
                "notificationTypeID",
                format!("{notification_type} is not a supported notification type"),
            ));
        }
        Err(status) => return Err(status.into()),
    }
    // 404 when there is nothing to deliver to, before involving delivery.
    registry
        .get_callback(grpc_request(pb::GetCallbackRequest {
            partner_id: partner.to_string(),
            notification_type,
        }))
        .await?;

    let sent = state
        .dispatcher()?
        .send_test_notification(grpc_request(dispatch::SendTestNotificationRequest {
            partner_id: partner.to_string(),
            notification_type,
            raw_body: body.to_vec(),
        }))
        .await?
        .into_inner();
    let accepted = EchoAccepted {
        delivery_url: format!("/v1/callbacks/deliveries/{}", sent.delivery_id),
        delivery_id: sent.delivery_id,
    };
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        h
    }

    #[test]
    fn json_of_any_shape_passes_here_and_nothing_else_does() {
        let h = json_headers();
        for good in [&br#"{"processUniqueId":"a"}"#[..], b"[1,2]", b"{}", b"null"] {
            assert!(check_raw_body(&h, good).is_ok());
        }
        for bad in [&br#"{"#[..], b"", b"{} x"] {
            assert_eq!(
                check_raw_body(&h, bad).unwrap_err().status(),
                StatusCode::BAD_REQUEST
            );
        }
        assert_eq!(
            check_raw_body(&HeaderMap::new(), br#"{"processUniqueId":"a"}"#)
                .unwrap_err()
                .status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }
}
