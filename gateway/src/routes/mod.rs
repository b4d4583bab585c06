//! The REST routes, each annotated for the OpenAPI document, and the
//! extractors that turn malformed input into problem documents instead of
//! axum's plain-text rejections.

pub(crate) mod admin;
pub(crate) mod callbacks;
pub(crate) mod deliveries;
pub(crate) mod echo;
pub(crate) mod erasure;
pub(crate) mod health;
pub(crate) mod pause;
pub(crate) mod portal_links;
pub(crate) mod recoveries;
pub(crate) mod secrets;
pub(crate) mod types;

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts};
use serde::de::DeserializeOwned;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::ObjectBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::problem::{ApiError, body_rejection};
use crate::state::AppState;

/// A JSON object body whose rejections are problem documents, read as JSON
/// Schema reads it (which is what the OpenAPI document promises): the top
/// level must be an object (serde alone takes an array for a struct), and
/// a number without a fraction (`5.0`) is an integer.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(body) =
            axum::Json::<serde_json::Value>::from_request(request, state).await?;
        Self::from_value(body)
    }
}

impl<T: DeserializeOwned> ApiJson<T> {
    fn from_value(mut body: serde_json::Value) -> Result<Self, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        integral_numbers(&mut body);
        serde_path_to_error::deserialize(body)
            .map(Self)
            .map_err(|e| ApiError::bad_request(format!("the body does not match the schema: {e}")))
    }
}

/// An optional JSON body: none when the request says no content type (as
/// axum's `Json` has it) or the body is JSON `null`, otherwise read as
/// [`ApiJson`] reads it.
impl<S: Send + Sync, T: DeserializeOwned> axum::extract::OptionalFromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<Option<Self>, ApiError> {
        if !request.headers().contains_key(http::header::CONTENT_TYPE) {
            return Ok(None);
        }
        let axum::Json(body) =
            <axum::Json<serde_json::Value> as FromRequest<S>>::from_request(request, state).await?;
        if body.is_null() {
            return Ok(None);
        }
        Self::from_value(body).map(Some)
    }
}

/// Turns every number without a fraction into an integer, as JSON Schema
/// counts it.
fn integral_numbers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                #[allow(clippy::cast_possible_truncation, reason = "integral and within 2^53")]
                let integer = f as i64;
                *value = Value::from(integer);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        Value::Object(fields) => fields.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

/// Path segments whose rejections are problem documents.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct ApiPath<T>(pub T);

/// Query parameters whose rejections are problem documents.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct ApiQuery<T>(pub T);

/// The raw body, bounded by the body limit.
#[derive(Debug)]
pub(crate) struct RawBody(pub bytes::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        Ok(Self(bytes::Bytes::from_request(request, state).await?))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request(format!("invalid path: {}", rejection.body_text()))
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        body_rejection(rejection.status(), rejection.body_text())
    }
}

/// `partnerUniqueID` (or another GUID path segment, named by `name`).
pub(crate) fn guid(name: &str, raw: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(raw).map_err(|_| ApiError::invalid_field(name, "must be a GUID"))
}

/// A notification type id from the path: a positive integer.
pub(crate) fn type_id(name: &str, raw: &str) -> Result<i32, ApiError> {
    match raw.parse::<i32>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::invalid_field(name, "must be a positive integer")),
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Partner Callbacks",
        description = "Register HTTPS callback URLs per notification type, manage them, fire test \
                       notifications and read their error state. Errors are RFC 9457 problem \
                       documents; every response carries X-Request-Id.",
    ),
    modifiers(&SecuritySchemes),
    components(schemas(crate::schemas::IsActive, crate::schemas::StatusFilter)),
    tags(
        (name = "callbacks", description = "A partner's callback registrations"),
        (name = "echo", description = "Test notifications"),
        (name = "deliveries", description = "The delivery log, and redelivery"),
        (name = "operators", description = "Partners, API keys and notification types (admin key)"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "partnerApiKey",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "adminApiKey",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The answers any route can give under load ([`crate::limits`]): 408 and
/// 503 on every route but liveness, and 429 with `Retry-After` on every
/// partner route. The routes join the document after the derive's
/// modifiers ran, so [`openapi`] applies this to the joined document.
struct LimitResponses;

impl LimitResponses {
    fn problem(description: &str) -> RefOr<Response> {
        let content = Content::new(Some(Ref::from_schema_name("Problem")));
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content("application/problem+json", content)
                .build(),
        )
    }

    fn retry_after() -> Header {
        let mut header =
            Header::new(ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::Integer));
        header.description = Some("Seconds to wait before retrying".to_owned());
        header
    }

    fn apply(operation: &mut Operation, path: &str) {
        if path == "/healthz" {
            return;
        }
        let responses = &mut operation.responses.responses;
        let with_retry = |description: &str| match Self::problem(description) {
            RefOr::T(mut response) => {
                response
                    .headers
                    .insert("Retry-After".to_owned(), RefOr::T(Self::retry_after()));
                RefOr::T(response)
            }
            other => other,
        };
        responses
            .entry("408".to_owned())
            .or_insert_with(|| Self::problem("The request, body included, took too long"));
        responses.entry("503".to_owned()).or_insert_with(|| {
            with_retry("Too many requests in progress, or a backend is unavailable")
        });
        let partner_route = serde_json::to_string(&operation.security)
            .is_ok_and(|security| security.contains("partnerApiKey"));
        if partner_route {
            operation.responses.responses.insert(
                "429".to_owned(),
                with_retry("This partner is over its request rate"),
            );
        }
    }
}

impl Modify for LimitResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in &mut openapi.paths.paths {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                Self::apply(operation, path);
            }
        }
    }
}

/// Every route, with its OpenAPI description collected alongside, so the
/// document cannot list a route the gateway does not serve or miss one it
/// does.
pub(crate) fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(callbacks::list_callbacks))
        .routes(routes!(
            callbacks::put_callback,
            callbacks::get_callback,
            callbacks::delete_callback
        ))
        .routes(routes!(callbacks::get_registration))
        .routes(routes!(pause::pause_callback))
        .routes(routes!(pause::resume_callback))
        .routes(routes!(secrets::get_secret))
        .routes(routes!(secrets::rotate_secret))
        .routes(routes!(echo::echo))
        .routes(routes!(deliveries::get_delivery))
        .routes(routes!(deliveries::redeliver))
        .routes(routes!(deliveries::list_deliveries))
        .routes(routes!(recoveries::recover))
        .routes(routes!(recoveries::get_recovery))
        .routes(routes!(erasure::erase_event))
        .routes(routes!(erasure::erase_payloads))
        .routes(routes!(admin::create_partner, admin::list_partners))
        .routes(routes!(admin::get_partner))
        .routes(routes!(admin::issue_api_key, admin::list_api_keys))
        .routes(routes!(admin::revoke_api_key))
        .routes(routes!(portal_links::mint_portal_link))
        .routes(routes!(types::list_for_partners))
        .routes(routes!(
            types::list_notification_types,
            types::create_notification_type
        ))
        .routes(routes!(
            types::put_payload_schema,
            types::delete_payload_schema
        ))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(crate::app::openapi_json))
        .routes(routes!(crate::app::metrics_text))
}

/// The OpenAPI document, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut api) = api().split_for_parts();
    LimitResponses.modify(&mut api);
    api
}
