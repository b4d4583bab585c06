//! Traces and logs, initialised once per process.
//!
//! - Spans are `tracing` spans bridged to OpenTelemetry by
//!   `tracing-opentelemetry`, but for one: the dispatcher's span per
//!   webhook attempt, made with the OpenTelemetry API for its cost
//!   (`dispatcher-service/src/delivery/http.rs`). They are exported over
//!   OTLP/gRPC only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; otherwise
//!   they still exist (so log lines carry a trace id and outgoing calls a
//!   `traceparent`) but are never exported. The attempt span alone is not
//!   made when nothing exports it ([`exporting`]): it is made once per
//!   delivery, and the request then carries its parent's context. The SDK
//!   honours `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//!   `OTEL_TRACES_SAMPLER(_ARG)` and the `OTEL_BSP_*` batching settings.
//! - W3C trace context (`traceparent`, `tracestate`) is the one propagator:
//!   extracted from every incoming HTTP request and gRPC call, injected into
//!   every outgoing one, stored with each event as text.
//! - Logs are `tracing` events: human lines by default, JSON with
//!   `LOG_FORMAT=json`; each line names the spans it happened in, whose
//!   fields include `trace_id` and, in the gateway, `request_id`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, global};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::LogFormat;

/// Flushes and shuts the exporter down when dropped (at the end of `main`).
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let _ = self.provider.force_flush();
        let _ = self.provider.shutdown();
    }
}

/// Set by [`init`] when spans are exported.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether this process exports spans. A span made only to be dropped is
/// worth making where it also parents others or names a log line's trace;
/// one made per delivery and parenting nothing is not.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Installs the global subscriber, tracer provider and propagator.
/// `service` is the `service.name` unless `OTEL_SERVICE_NAME` says otherwise.
pub fn init(service: &'static str, format: LogFormat) -> anyhow::Result<Telemetry> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service);
    }
    let mut provider = SdkTracerProvider::builder().with_resource(resource.build());
    let exporting = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok_and(|v| !v.is_empty())
        || std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_ok_and(|v| !v.is_empty());
    EXPORTING.store(exporting, Ordering::Relaxed);
    if exporting {
        use opentelemetry_otlp::WithExportConfig as _;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_timeout(Duration::from_secs(5))
            .build()?;
        provider = provider.with_batch_exporter(exporter);
    }
    let provider = provider.build();
    global::set_tracer_provider(provider.clone());

    // Each layer filters for itself: `RUST_LOG` sets how much is logged,
    // never what is traced.
    let log_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,h2=warn,hyper=warn,tower=warn,opentelemetry=warn")
    });
    let fmt = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
    };
    // Spans carry the attributes documented in docs/operations.md and no
    // more: busy/idle times, thread and source location would add seven
    // attributes to every span (most of an attempt span's export size) and
    // a clock read to every poll of an instrumented future.
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service))
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_filter(EnvFilter::new(
            "info,h2=off,hyper=off,tower=off,opentelemetry=off,opentelemetry_sdk=off",
        ));
    // A second init in the same process (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(log_filter))
        .with(spans)
        .try_init();
    Ok(Telemetry { provider })
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The propagator writes `tracestate` even when it is empty; W3C
        // asks senders not to send an empty one.
        if value.is_empty() {
            return;
        }
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The trace context an incoming request carries (empty if none).
pub fn extract(headers: &http::HeaderMap) -> Context {
    global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

/// Writes the current span's trace context into outgoing headers.
pub fn inject_current(headers: &mut http::HeaderMap) {
    inject(&tracing::Span::current().context(), headers);
}

pub fn inject(context: &Context, headers: &mut http::HeaderMap) {
    global::get_text_map_propagator(|p| p.inject_context(context, &mut HeaderInjector(headers)));
}

/// The current span's context as a `traceparent` value, to store.
pub fn current_traceparent() -> Option<String> {
    let mut carrier = HashMap::new();
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    global::get_text_map_propagator(|p| p.inject_context(&context, &mut carrier));
    carrier.remove("traceparent")
}

/// A stored `traceparent` back into a context to parent spans on. Called
/// once per delivery attempt, so the carrier borrows the value rather than
/// building a map.
pub fn from_traceparent(traceparent: &str) -> Context {
    global::get_text_map_propagator(|p| p.extract(&Traceparent(traceparent)))
}

/// A carrier holding nothing but a `traceparent`.
struct Traceparent<'a>(&'a str);

impl Extractor for Traceparent<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

/// Parents `span` on `context` and records its trace id (declare
/// `trace_id = tracing::field::Empty` on the span) for the logs. With a
/// parent, the id is the parent's, read from `context` (cheaper than
/// asking the span, which builds its whole context); without one, the
/// span starts a trace of its own and is asked.
pub fn adopt(span: &tracing::Span, context: Context) {
    let parent = context.span().span_context().trace_id();
    let _ = span.set_parent(context);
    let trace_id = if parent == opentelemetry::trace::TraceId::INVALID {
        span.context().span().span_context().trace_id()
    } else {
        parent
    };
    span.record("trace_id", tracing::field::display(trace_id));
}

/// gRPC clients: the current span's context on every call, and this
/// process's caller token (`service_kit::callers`), if it has one.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    authorization: Option<tonic::metadata::AsciiMetadataValue>,
}

impl Outbound {
    /// Calls that present `token` (none: calls that present nothing).
    pub fn new(token: Option<&str>) -> anyhow::Result<Self> {
        let authorization = token
            .map(|token| format!("Bearer {token}").parse())
            .transpose()
            .map_err(|_| anyhow::anyhow!("a caller token must be printable ASCII"))?;
        Ok(Self { authorization })
    }
}

impl tonic::service::Interceptor for Outbound {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let mut headers = http::HeaderMap::new();
        inject_current(&mut headers);
        for (name, value) in &headers {
            if let (Ok(key), Ok(value)) = (
                tonic::metadata::MetadataKey::from_bytes(name.as_str().as_bytes()),
                tonic::metadata::MetadataValue::try_from(value.as_bytes()),
            ) {
                request.metadata_mut().insert(key, value);
            }
        }
        if let Some(authorization) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
        }
        Ok(request)
    }
}

/// A channel whose calls carry the caller's trace context and token.
pub type OutboundChannel =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Outbound>;
