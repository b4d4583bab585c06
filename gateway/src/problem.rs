//! Errors as RFC 9457 problem documents (`application/problem+json`), and
//! the one place where gRPC statuses become HTTP statuses.
//!
//! Every document has `type`, `title`, `status`, `detail` and `requestId`;
//! validation errors add `invalidParams`, one entry per offending field,
//! named as the public contract names it. Internal errors are logged here,
//! once, and reach the caller as a bare "internal error".

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use tonic::Code;
use tonic_types::StatusExt;
use utoipa::ToSchema;

use crate::request_id;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "type": "/problems/invalid-request",
    "title": "Invalid request",
    "status": 400,
    "detail": "callBackUrl: must use https",
    "requestId": "0b9f4c4e-3c57-4a4f-8c43-a8d1c1f0e7a2",
    "invalidParams": [{"name": "callBackUrl", "reason": "must use https"}]
}))]
pub(crate) struct Problem {
    /// A URI reference naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request's `X-Request-Id`, to quote to support.
    pub request_id: String,
    /// For validation errors: each offending field and the rule it broke.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid_params: Vec<InvalidParam>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct InvalidParam {
    /// The field, query parameter or path segment, as the API names it.
    pub name: String,
    pub reason: String,
}

/// An error on its way to becoming a problem document.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    detail: String,
    invalid_params: Vec<InvalidParam>,
    /// Sent as `Retry-After`, in whole seconds rounded up.
    retry_after: Option<Duration>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            title,
            detail: detail.into(),
            invalid_params: Vec::new(),
            retry_after: None,
        }
    }

    /// 400 naming the offending fields.
    pub fn invalid(params: Vec<InvalidParam>) -> Self {
        let detail = params
            .iter()
            .map(|p| format!("{}: {}", p.name, p.reason))
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            invalid_params: params,
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "Invalid request",
                detail,
            )
        }
    }

    pub fn invalid_field(name: &str, reason: impl Into<String>) -> Self {
        Self::invalid(vec![InvalidParam {
            name: name.to_owned(),
            reason: reason.into(),
        }])
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "Invalid request",
            detail,
        )
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "the body must be JSON, sent with content-type: application/json",
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "this path does not accept that method",
        )
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        )
    }

    /// 429: the caller is over a rate; it may try again after `wait`.
    pub fn rate_limited(detail: impl Into<String>, wait: Duration) -> Self {
        Self {
            retry_after: Some(wait),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                detail,
            )
        }
    }

    /// 503: too many requests in progress on this gateway.
    pub fn overloaded() -> Self {
        Self {
            retry_after: Some(Duration::from_secs(1)),
            ..Self::unavailable("this gateway has too many requests in progress; retry shortly")
        }
    }

    /// 408: the request took longer than `limit`, its body included.
    pub fn request_timeout(limit: Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            "Request timeout",
            format!(
                "the request was not complete within {} s",
                limit.as_secs_f64()
            ),
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "internal error; quote the requestId to support",
        )
    }

    /// What went wrong, in words (the problem document's `detail`).
    pub fn detail(&self) -> &str {
        &self.detail
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = Problem {
            kind: format!("/problems/{}", self.kind),
            title: self.title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail,
            request_id: request_id::current().to_string(),
            invalid_params: self.invalid_params,
        };
        let mut response = (self.status, Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="partner-callbacks""#),
            );
        }
        response
    }
}

/// The registry's field names are the protobuf ones; the caller knows the
/// REST ones.
fn rest_name(grpc_field: &str) -> &str {
    match grpc_field {
        "partner_id" => "partnerUniqueID",
        "notification_type" => "notificationType",
        "notification_type_id" => "notificationTypeId",
        "callback_url" => "callBackUrl",
        "callback_user_name" => "callBackUserName",
        "callback_password" => "callBackPassword",
        "registration_id" => "registrationId",
        "merchant_id" => "merchantId",
        "retry_policy.name" => "retryPolicy.name",
        "retry_policy.schedule_seconds" => "retryPolicy.scheduleSeconds",
        "signature_scheme" => "signatureScheme",
        "previous_expires_in_seconds" => "previousExpiresInSeconds",
        "page_number" => "pageNumber",
        "page_size" => "pageSize",
        "key_id" => "keyId",
        "key_label" => "keyLabel",
        "delivery_id" => "deliveryId",
        "event_id" => "eventId",
        "raw_body" => "rawBody",
        "payload_schema_json" => "payloadSchema",
        other => other,
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            Code::InvalidArgument => invalid_argument(status),
            Code::NotFound => ApiError::not_found(message),
            Code::AlreadyExists | Code::FailedPrecondition => {
                ApiError::new(StatusCode::CONFLICT, "conflict", "Conflict", message)
            }
            Code::Unauthenticated => ApiError::unauthorized("missing or invalid API key"),
            Code::PermissionDenied => ApiError::forbidden(message),
            Code::ResourceExhausted => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                message,
            ),
            Code::Unavailable | Code::Cancelled => {
                tracing::warn!(grpc.status = ?status.code(), grpc.message = %status.message(), "backend unavailable");
                ApiError::unavailable("a backend service is unavailable; retry later")
            }
            // The dispatcher could not find out whether a write committed:
            // repeating it may make a second copy.
            Code::Unknown => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "outcome-unknown",
                "Outcome unknown",
                "the request may or may not have taken effect; check before repeating it",
            ),
            Code::DeadlineExceeded => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "Gateway timeout",
                "a backend service did not answer in time; retry later",
            ),
            _ => {
                tracing::error!(grpc.status = ?status.code(), grpc.message = %status.message(), "backend error");
                ApiError::internal()
            }
        }
    }
}

/// A 400 naming each field the backend rejected, in the REST contract's
/// names, or carrying its message when it named none.
fn invalid_argument(status: tonic::Status) -> ApiError {
    let params: Vec<InvalidParam> = status
        .get_details_bad_request()
        .map(|details| {
            details
                .field_violations
                .into_iter()
                .map(|v| InvalidParam {
                    name: rest_name(&v.field).to_owned(),
                    reason: v.description,
                })
                .collect()
        })
        .unwrap_or_default();
    if params.is_empty() {
        ApiError::bad_request(status.message().to_owned())
    } else {
        ApiError::invalid(params)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::unsupported_media_type(),
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::bad_request(format!("the body is not valid JSON: {}", e.body_text()))
            }
            JsonRejection::JsonDataError(e) => ApiError::bad_request(format!(
                "the body does not match the schema: {}",
                e.body_text()
            )),
            JsonRejection::BytesRejection(e) => body_rejection(e.status(), e.body_text()),
            other => ApiError::bad_request(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request(format!("invalid query string: {}", rejection.body_text()))
    }
}

/// A body that could not be read: too large (413) or broken off.
pub(crate) fn body_rejection(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            "the body is larger than this endpoint accepts",
        )
    } else {
        ApiError::new(status, "invalid-request", "Invalid request", text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_map_to_http() {
        let cases = [
            (tonic::Status::not_found("x"), StatusCode::NOT_FOUND),
            (
                tonic::Status::invalid_argument("x"),
                StatusCode::BAD_REQUEST,
            ),
            (tonic::Status::already_exists("x"), StatusCode::CONFLICT),
            (
                tonic::Status::unauthenticated("x"),
                StatusCode::UNAUTHORIZED,
            ),
            (tonic::Status::permission_denied("x"), StatusCode::FORBIDDEN),
            (
                tonic::Status::unavailable("x"),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                tonic::Status::deadline_exceeded("x"),
                StatusCode::GATEWAY_TIMEOUT,
            ),
            (tonic::Status::unknown("x"), StatusCode::GATEWAY_TIMEOUT),
            (
                tonic::Status::internal("secret detail"),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (status, http) in cases {
            assert_eq!(ApiError::from(status).status(), http);
        }
        let internal = ApiError::from(tonic::Status::internal("secret detail"));
        assert!(!internal.detail.contains("secret"));
    }

    #[test]
    fn field_violations_keep_rest_names() {
        let details =
            tonic_types::ErrorDetails::with_bad_request(vec![tonic_types::FieldViolation::new(
                "callback_url",
                "must use https",
            )]);
        let status = tonic::Status::with_error_details(Code::InvalidArgument, "x", details);
        let error = ApiError::from(status);
        assert_eq!(
            error.invalid_params,
            [InvalidParam {
                name: "callBackUrl".into(),
                reason: "must use https".into()
            }]
        );
    }
}
