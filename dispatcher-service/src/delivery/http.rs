//! One delivery attempt over HTTP(S).
//!
//! - **Outbound safety.** Host names are resolved by [`GuardedResolver`]
//!   (see [`super::dns`]), so a connection goes only to a checked address;
//!   IP literals are checked before connecting.
//! - **One client** (hyper-util, rustls, pooled keep-alive connections,
//!   HTTP/1.1 and HTTP/2) serves every attempt; nothing is set up per
//!   delivery.
//! - **Bounded**: connect timeout, a deadline for the whole exchange, at most
//!   `MAX_BODY_READ` bytes of the answer read. Redirects are never followed.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ipnet::IpNet;
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _, TraceId, Tracer as _};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use secrecy::ExposeSecret;
use service_kit::net::check_outbound;
use uuid::Uuid;

use crate::domain::attempt::parse_retry_after;
use crate::domain::signature;
use crate::domain::{AttemptResult, FailureKind};
use crate::registry::Target;

use super::dns::GuardedResolver;

/// The most of an answer's head buffered while it is parsed. hyper parses
/// the whole buffer again on each read, so an endless head costs CPU in
/// the square of this; an endpoint's status and headers need far less.
const MAX_HEAD_READ: usize = 16 * 1024;
/// How much of an answer is read; the rest is dropped with the connection.
const MAX_BODY_READ: usize = 64 * 1024;
/// How much of it is kept in the attempt log.
const EXCERPT_LEN: usize = 1024;
const USER_AGENT_VALUE: &str = concat!("partner-callbacks/", env!("CARGO_PKG_VERSION"));
const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
/// Sent as `true` with test (echo) deliveries only, so that a receiver can
/// tell them from real events without reading the payload.
pub const TEST_HEADER: HeaderName = HeaderName::from_static("partner-callbacks-test");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub connect_timeout: Duration,
    /// For the whole exchange: connect, send, answer, read.
    pub response_timeout: Duration,
    pub allowed_networks: Vec<IpNet>,
    pub allow_http: bool,
    /// PEM files of extra certificate authorities to trust.
    pub extra_ca_files: Vec<PathBuf>,
    /// Idle keep-alive connections kept per host. Below the attempts that
    /// can be in flight to one host, every attempt past it opens (and
    /// later closes) a connection of its own.
    pub max_idle_per_host: usize,
    /// Name servers to resolve callback hosts with; empty: the system's.
    pub dns_servers: Vec<SocketAddr>,
}

type HttpsClient = Client<HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>;

/// Which delivery an attempt is for: its signing id, and what its span
/// says about it.
#[derive(Debug, Clone)]
pub struct AttemptOf<'a> {
    pub delivery_id: Uuid,
    pub partner_id: Uuid,
    pub notification_type: i32,
    /// 1-based, over the delivery's whole life.
    pub attempt_number: i32,
    /// The publisher's trace, stored with the event: the attempt's parent.
    pub trace_context: Option<&'a str>,
    /// When the attempt starts, on the database's clock (`storage::clock`):
    /// logged, reported, and sent as `webhook-timestamp`.
    pub started_at: DateTime<Utc>,
    /// A test (echo) delivery: its request carries [`TEST_HEADER`].
    pub is_test: bool,
}

/// What an attempt's request carries of the trace it belongs to.
#[derive(Debug, Clone, Copy)]
enum Trace<'a> {
    /// The attempt's own span, exported: its context.
    Span(&'a opentelemetry::Context),
    /// No span is made (nothing exports it): the publisher's stored
    /// `traceparent` goes on as it is, without being parsed and written
    /// again.
    Stored(Option<&'a str>),
}

impl Trace<'_> {
    fn trace_id(self) -> TraceId {
        match self {
            Trace::Span(context) => context.span().span_context().trace_id(),
            // `00-{trace id}-{span id}-{flags}`
            Trace::Stored(traceparent) => traceparent
                .and_then(|t| t.get(3..35))
                .and_then(|id| TraceId::from_hex(id).ok())
                .unwrap_or(TraceId::INVALID),
        }
    }

    fn write(self, headers: &mut HeaderMap) {
        match self {
            Trace::Span(context) => service_kit::telemetry::inject(context, headers),
            Trace::Stored(Some(traceparent)) => {
                if let Ok(value) = HeaderValue::from_str(traceparent) {
                    headers.insert(TRACEPARENT, value);
                }
            }
            Trace::Stored(None) => {}
        }
    }
}

/// The result of one attempt, with what the attempt log keeps.
#[derive(Debug, Clone)]
pub struct Attempted {
    pub result: AttemptResult,
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    pub excerpt: String,
    /// The attempt span's trace, for the log line about the attempt (the
    /// span is not a `tracing` span, so log lines do not name it).
    pub trace_id: TraceId,
}

#[derive(Debug, Clone)]
pub struct Deliverer {
    client: HttpsClient,
    settings: Arc<HttpSettings>,
}

fn tls_config(extra_ca_files: &[PathBuf]) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for file in extra_ca_files {
        let certificates = CertificateDer::pem_file_iter(file)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("parsing {}: {e}", file.display()))?;
        anyhow::ensure!(
            !certificates.is_empty(),
            "{} holds no certificate",
            file.display()
        );
        for certificate in certificates {
            roots.add(certificate)?;
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// `15 s`, `0.5 s`.
fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

impl Deliverer {
    pub fn new(settings: HttpSettings) -> anyhow::Result<Self> {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver::new(
            settings.allowed_networks.clone(),
            &settings.dns_servers,
        )?);
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(&settings.extra_ca_files)?)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(settings.max_idle_per_host)
            .http1_max_buf_size(MAX_HEAD_READ)
            .build(https);
        Ok(Self {
            client,
            settings: Arc::new(settings),
        })
    }

    pub fn response_timeout(&self) -> Duration {
        self.settings.response_timeout
    }

    /// The longest one attempt can take: connecting, then the exchange.
    pub fn attempt_budget(&self) -> Duration {
        self.settings.connect_timeout + self.settings.response_timeout
    }

    /// Checks what can be checked before connecting: the scheme and, for an
    /// IP literal, the address.
    fn check_target(&self, uri: &Uri) -> Result<(), String> {
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if self.settings.allow_http => {}
            Some(other) => return Err(format!("refused: {other} URLs are not allowed")),
            None => return Err("refused: the URL has no scheme".into()),
        }
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            check_outbound(ip, &self.settings.allowed_networks)
                .map_err(|range| format!("refused: {ip} is {range}"))?;
        }
        Ok(())
    }

    fn build_request(
        &self,
        uri: Uri,
        target: &Target,
        of: &AttemptOf<'_>,
        body: &Bytes,
        trace: Trace<'_>,
    ) -> Result<Request<Full<Bytes>>, String> {
        let webhook_id = of.delivery_id.to_string();
        let timestamp = of.started_at.timestamp();
        let signature = signature::sign(&target.signing_keys, &webhook_id, timestamp, body)
            .map_err(|e| e.to_string())?;
        let invalid = |e: http::header::InvalidHeaderValue| format!("invalid request: {e}");
        // Sized for every header sent (with `traceparent`, `tracestate` and
        // credentials), so that the map is allocated once.
        let mut headers = HeaderMap::with_capacity(10);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        headers.insert(
            WEBHOOK_ID,
            HeaderValue::try_from(webhook_id).map_err(invalid)?,
        );
        headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp));
        headers.insert(
            WEBHOOK_SIGNATURE,
            HeaderValue::try_from(signature).map_err(invalid)?,
        );
        if of.is_test {
            headers.insert(TEST_HEADER, HeaderValue::from_static("true"));
        }
        if let Some(user) = &target.user_name {
            let password = target
                .password
                .as_ref()
                .map(|p| p.expose_secret())
                .unwrap_or_default();
            let mut value = HeaderValue::from_str(&format!(
                "Basic {}",
                STANDARD.encode(format!("{user}:{password}"))
            ))
            .map_err(|_| "the credentials are not valid in a header".to_owned())?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        // The receiver joins the attempt's trace.
        trace.write(&mut headers);
        let mut request = Request::new(Full::new(body.clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        Ok(request)
    }

    /// POSTs `body` to the target and classifies what happened, inside an
    /// HTTP client span that is a child of the publisher's trace.
    ///
    /// The span is made with the OpenTelemetry API, not as a `tracing`
    /// span like every other: it is the one span per delivery, and through
    /// `tracing-opentelemetry` (a registry entry, every field formatted
    /// through a visitor, enter and exit on every poll) it costs a quarter
    /// of the dispatcher's CPU (docs/benchmarks.md, "What moved the numbers"). Here the
    /// attributes that do not change between attempts are built once per
    /// target and shared, and a span the sampler drops is never recorded.
    /// Its attributes are those documented in docs/operations.md. The
    /// tracer is the global one at the time of the attempt (a read lock),
    /// so that no deliverer built before `telemetry::init` sends spans
    /// nowhere. When nothing exports spans, none is made: the request
    /// carries the publisher's `traceparent` as stored, and the log line
    /// its trace id (the span, dropped unseen, and the context parsed and
    /// written again for it take about a tenth of the dispatcher's CPU;
    /// docs/benchmarks.md, "What moved the numbers").
    pub async fn attempt(&self, target: &Target, of: AttemptOf<'_>, body: &Bytes) -> Attempted {
        if !service_kit::telemetry::exporting() {
            let trace = Trace::Stored(of.trace_context);
            return self.exchange(target, trace, &of, body).await;
        }
        let parent = of
            .trace_context
            .map(service_kit::telemetry::from_traceparent)
            .unwrap_or_default();
        let mut attributes = Vec::with_capacity(target.span_attributes.len() + 6);
        attributes.extend_from_slice(&target.span_attributes);
        attributes.extend([
            KeyValue::new("delivery.id", of.delivery_id.to_string()),
            KeyValue::new("delivery.attempt", i64::from(of.attempt_number)),
            KeyValue::new("partner.id", of.partner_id.to_string()),
            KeyValue::new("notification.type", i64::from(of.notification_type)),
        ]);
        let tracer = opentelemetry::global::tracer("dispatcher-service");
        let span = tracer
            .span_builder("POST")
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(&tracer, &parent);
        let context = parent.with_span(span);
        let outcome = self
            .exchange(target, Trace::Span(&context), &of, body)
            .await;
        let span = context.span();
        if let Some(status) = outcome.result.status() {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        if let Some(reason) = outcome.result.reason() {
            span.set_attribute(KeyValue::new("error.type", reason.clone()));
            span.set_status(Status::error(reason));
        }
        span.end();
        outcome
    }

    /// The request carries `trace` (see [`Trace`]).
    async fn exchange(
        &self,
        target: &Target,
        trace: Trace<'_>,
        of: &AttemptOf<'_>,
        body: &Bytes,
    ) -> Attempted {
        let clock = Instant::now();
        let trace_id = trace.trace_id();
        let (result, excerpt) = self
            .answer(target, trace, of, body)
            .await
            .unwrap_or_else(|failed| (failed, String::new()));
        Attempted {
            result,
            started_at: of.started_at,
            duration: clock.elapsed(),
            excerpt,
            trace_id,
        }
    }

    /// Sends the request and reads the answer: its result and the excerpt
    /// of its body, or the failure that left no answer.
    async fn answer(
        &self,
        target: &Target,
        trace: Trace<'_>,
        of: &AttemptOf<'_>,
        body: &Bytes,
    ) -> Result<(AttemptResult, String), AttemptResult> {
        let refused = |reason: String| AttemptResult::no_answer(FailureKind::Refused, reason);
        let uri = target
            .uri
            .clone()
            .ok_or_else(|| refused("refused: the URL is not valid".into()))?;
        let request = self
            .check_target(&uri)
            .and_then(|()| self.build_request(uri, target, of, body, trace))
            .map_err(refused)?;
        let deadline = tokio::time::Instant::now() + self.settings.response_timeout;
        let response = match tokio::time::timeout_at(deadline, self.client.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                let (kind, reason) = super::failure::classify(&error);
                return Err(AttemptResult::no_answer(kind, reason));
            }
            Err(_) => {
                let reason = format!("timeout after {}", seconds(self.settings.response_timeout));
                return Err(AttemptResult::no_answer(FailureKind::Timeout, reason));
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            // An HTTP date is the endpoint's wall clock, read against ours.
            .and_then(|v| {
                #[allow(clippy::disallowed_methods)]
                parse_retry_after(v, Utc::now())
            });
        let excerpt = excerpt(response.into_body(), deadline).await;
        Ok((AttemptResult::from_status(status, retry_after), excerpt))
    }
}

/// The answer's first bytes, for the attempt log: a bounded prefix read
/// within what is left of the deadline. A body that trickles past it does
/// not change the status it came with.
async fn excerpt<B>(mut body: B, deadline: tokio::time::Instant) -> String
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    let mut read = Vec::new();
    while read.len() < MAX_BODY_READ {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    read.extend_from_slice(data);
                }
            }
            _ => break,
        }
    }
    read.truncate(EXCERPT_LEN);
    String::from_utf8_lossy(&read).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(seconds(Duration::from_secs(15)), "15 s");
        assert_eq!(seconds(Duration::from_millis(500)), "0.5 s");
    }
}
