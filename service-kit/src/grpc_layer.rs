//! A tower layer for every tonic server: one span per call, parented on
//! the caller's trace context, named and attributed by the OpenTelemetry
//! RPC conventions (`rpc.system`, `rpc.service`, `rpc.method`,
//! `rpc.grpc.status_code`), plus request counts and latencies by service,
//! method and status. Health and reflection calls are left out: probes
//! would drown the real traffic. An oversized message is answered as
//! [`crate::message_cap`] says.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tracing::Instrument as _;

use crate::telemetry;

#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcServerLayer;

impl<S> tower::Layer<S> for GrpcServerLayer {
    type Service = GrpcServerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcServerService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcServerService<S> {
    inner: S,
}

/// The gRPC status of a response: in its headers for errors answered
/// without a body ("trailers-only"), else OK (a failure after the body had
/// started streaming would show in trailers; our RPCs are unary).
fn status_code<B>(response: &http::Response<B>) -> i32 {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl<S, B, RB> tower::Service<http::Request<B>> for GrpcServerService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Send,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().trim_start_matches('/').to_owned();
        let (service, method) = path.split_once('/').unwrap_or((path.as_str(), ""));
        let (service, method) = (service.to_owned(), method.to_owned());
        if service.starts_with("grpc.health.") || service.starts_with("grpc.reflection.") {
            return Box::pin(self.inner.call(request));
        }
        let request_id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let span = tracing::info_span!(
            "grpc",
            otel.name = %path,
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            request_id = %request_id,
            partner.id = tracing::field::Empty,
            notification.type = tracing::field::Empty,
            delivery.id = tracing::field::Empty,
        );
        telemetry::adopt(&span, telemetry::extract(request.headers()));
        let started = Instant::now();
        let call = self.inner.call(request);
        Box::pin(
            async move {
                let mut result = call.await;
                if let Ok(response) = &mut result {
                    crate::message_cap::as_resource_exhausted(response);
                }
                let code = result.as_ref().map(status_code).unwrap_or(2);
                let current = tracing::Span::current();
                current.record("rpc.grpc.status_code", code);
                if code != 0 {
                    current.record("otel.status_code", "ERROR");
                }
                let labels = [
                    ("rpc_service", service),
                    ("rpc_method", method),
                    ("rpc_grpc_status_code", code.to_string()),
                ];
                metrics::counter!("rpc_server_requests_total", &labels).increment(1);
                metrics::histogram!("rpc_server_duration_seconds", &labels[..2])
                    .record(started.elapsed().as_secs_f64());
                result
            }
            .instrument(span),
        )
    }
}
