//! `X-Request-Id`: every response carries one, the caller's when it sent a
//! GUID, a new one otherwise. The id is kept in a task-local for the whole
//! request, so that problem documents and outgoing gRPC calls can name it
//! without every handler passing it along.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use uuid::Uuid;

pub(crate) const HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: Uuid;
}

/// The current request's id; a fresh one outside a request (never expected,
/// but never a panic either).
pub(crate) fn current() -> Uuid {
    REQUEST_ID
        .try_with(|id| *id)
        .unwrap_or_else(|_| Uuid::new_v4())
}

/// Outermost middleware: picks the id, runs the request inside its scope and
/// stamps the response.
pub(crate) async fn middleware(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| Uuid::try_parse(value.trim()).ok())
        .unwrap_or_else(Uuid::new_v4);
    let mut response = REQUEST_ID.scope(id, next.run(request)).await;
    let value = HeaderValue::from_str(&id.hyphenated().to_string())
        .expect("a hyphenated UUID is a valid header value");
    response.headers_mut().insert(HEADER, value);
    response
}
