//! One span per HTTP request, parented on the caller's `traceparent` and
//! named and attributed by the OpenTelemetry HTTP server conventions
//! (`{method} {route}`, `http.request.method`, `http.route`,
//! `http.response.status_code`, `url.path`), carrying the request id; and
//! request counts and latencies by method, route and status. Routes are
//! the route templates, never the concrete paths, so label values stay
//! bounded.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use service_kit::telemetry;
use tracing::Instrument as _;

use crate::request_id;

pub(crate) async fn middleware(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let span = tracing::info_span!(
        "http",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        http.route = %route,
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        request_id = %request_id::current(),
        trace_id = tracing::field::Empty,
    );
    telemetry::adopt(&span, telemetry::extract(request.headers()));
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    // The access log: one line per request, inside its span, so it carries
    // the request id and the trace id.
    span.in_scope(|| tracing::info!(status, duration_ms = elapsed.as_millis() as u64, "request"));
    let labels = [
        ("http_request_method", method),
        ("http_route", route),
        ("http_response_status_code", status.to_string()),
    ];
    metrics::counter!("http_server_requests_total", &labels).increment(1);
    metrics::histogram!("http_server_duration_seconds", &labels[..2])
        .record(started.elapsed().as_secs_f64());
    response
}

/// Registers the help text of the gateway's own metrics (`promtool check
/// metrics` refuses metrics without it).
pub(crate) fn describe() {
    metrics::describe_counter!(
        "http_server_requests_total",
        "HTTP requests, by method, route template and status"
    );
    metrics::describe_histogram!(
        "http_server_duration_seconds",
        "HTTP request latency, by method and route template"
    );
}
