//! What the dispatcher asks the registry, and how rarely it asks.
//!
//! - **Resolution** ((partner, type) -> URL, credentials, secrets) is cached
//!   for a short TTL, so the hot path makes no registry call per delivery,
//!   and a changed URL is picked up within the TTL. "No active
//!   registration" is cached too.
//! - **The catalogue** of notification types is cached the same way, to
//!   refuse unknown types at publish.
//! - **Outcomes** are reported when they change the registration's error
//!   state: every failure (it sets or updates the reason) but a success
//!   only when the registration is believed to be in error state. Reports
//!   go through a queue to a background task, so delivery never waits on
//!   the registry.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callbacks_proto::registry::v1 as pb;
use callbacks_proto::registry::v1::registry_service_client::RegistryServiceClient;
use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashMapExt as _, HashSet, HashSetExt as _};
use opentelemetry::{KeyValue, Value};
use secrecy::SecretString;
use service_kit::telemetry::{TraceInjector, TracedChannel};
use tokio::sync::mpsc;
use tonic::Code;
use tonic::transport::Endpoint;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::domain::signature::SigningKey;
use crate::domain::{AttemptResult, DispatchError};

/// Where and how to deliver to a registration. Built once per resolution
/// and shared by all its attempts, so what every attempt needs of the URL
/// (parsed, and redacted for its span) is worked out here, once.
#[derive(Debug)]
pub struct Target {
    pub registration_id: Uuid,
    pub url: String,
    /// `url` parsed; `None` if it is not a valid URI (each attempt then
    /// fails with that reason).
    pub uri: Option<http::Uri>,
    /// The attempt span's attributes that are the same for every attempt:
    /// the method, `url.full` (without the query, which may carry a
    /// token), `server.address`, `server.port` and `registration.id`.
    pub span_attributes: Vec<KeyValue>,
    pub user_name: Option<String>,
    pub password: Option<SecretString>,
    pub signing_keys: Vec<SigningKey>,
}

impl Target {
    pub fn new(
        registration_id: Uuid,
        url: String,
        user_name: Option<String>,
        password: Option<SecretString>,
        signing_keys: Vec<SigningKey>,
    ) -> Self {
        let uri = url.parse::<http::Uri>().ok();
        // Shared strings: each attempt copies these, and a copy is then a
        // reference count, not an allocation.
        let shared = |s: String| Value::from(Arc::<str>::from(s));
        let host = uri.as_ref().and_then(http::Uri::host).unwrap_or_default();
        let mut span_attributes = vec![
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new(
                "url.full",
                shared(uri.as_ref().map(redacted_url).unwrap_or_default()),
            ),
            KeyValue::new("server.address", shared(host.to_owned())),
            KeyValue::new("registration.id", shared(registration_id.to_string())),
        ];
        if let Some(port) = uri.as_ref().and_then(http::Uri::port_u16) {
            span_attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        Self {
            registration_id,
            url,
            uri,
            span_attributes,
            user_name,
            password,
            signing_keys,
        }
    }
}

/// `url.full` without the query, which may carry a token.
fn redacted_url(uri: &http::Uri) -> String {
    format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("https"),
        uri.authority().map(|a| a.as_str()).unwrap_or_default(),
        uri.path()
    )
}

#[derive(Debug, Clone)]
pub enum Resolution {
    Active(Arc<Target>),
    NoSubscriber,
}

type Key = (Uuid, i32);

#[derive(Debug)]
pub struct RegistryClient {
    client: RegistryServiceClient<TracedChannel>,
    ttl: Duration,
    /// Each resolution with when it expires.
    resolutions: Mutex<HashMap<Key, (Resolution, Instant)>>,
    catalogue: Mutex<(HashSet<i32>, Option<Instant>)>,
    /// Registrations believed to be in error state.
    failing: Mutex<HashSet<Uuid>>,
    reports: mpsc::Sender<Report>,
}

/// An outcome to report, with the trace of the attempt it came from.
#[derive(Debug)]
struct Report {
    request: pb::RecordDeliveryOutcomeRequest,
    trace_context: Option<String>,
}

const MAX_CACHED: usize = 100_000;
/// The longest "no active registration" is remembered.
const NEGATIVE_TTL: Duration = Duration::from_secs(1);

impl RegistryClient {
    /// A client of the registry at `url`; also returns the reporter task to
    /// spawn.
    pub fn new(
        url: &str,
        ttl: Duration,
    ) -> anyhow::Result<(Arc<Self>, impl Future<Output = ()> + Send + 'static)> {
        let channel = Endpoint::from_shared(url.to_owned())?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .connect_lazy();
        let client = RegistryServiceClient::with_interceptor(channel, TraceInjector);
        let (reports, queue) = mpsc::channel(10_000);
        let this = Arc::new(Self {
            client: client.clone(),
            ttl,
            resolutions: Mutex::new(HashMap::new()),
            catalogue: Mutex::new((HashSet::new(), None)),
            failing: Mutex::new(HashSet::new()),
            reports,
        });
        Ok((
            this.clone(),
            report_outcomes(client, queue, Arc::downgrade(&this)),
        ))
    }

    fn cached(&self, key: Key) -> Option<Resolution> {
        let cache = self.resolutions.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(&key)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(resolution, _)| resolution.clone())
    }

    /// Where (partner, type) delivers now; from the cache when fresh.
    pub async fn resolve(
        &self,
        partner: Uuid,
        notification_type: i32,
    ) -> Result<Resolution, DispatchError> {
        let key = (partner, notification_type);
        if let Some(hit) = self.cached(key) {
            return Ok(hit);
        }
        let answer = self
            .client
            .clone()
            .resolve_callback(pb::ResolveCallbackRequest {
                partner_id: partner.to_string(),
                notification_type,
            })
            .await;
        let resolution = match answer {
            Ok(response) => {
                let r = response.into_inner();
                let registration_id =
                    Uuid::try_parse(&r.registration_id).map_err(DispatchError::internal)?;
                let signing_keys = r
                    .signing_secrets
                    .into_iter()
                    .map(|s| SigningKey::from_secret(&SecretString::from(s)))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(DispatchError::internal)?;
                self.note_error_state(registration_id, r.is_in_error_state);
                Resolution::Active(Arc::new(Target::new(
                    registration_id,
                    r.callback_url,
                    r.callback_user_name,
                    r.callback_password.map(SecretString::from),
                    signing_keys,
                )))
            }
            // No active registration, or the partner is disabled.
            Err(status) if matches!(status.code(), Code::NotFound | Code::FailedPrecondition) => {
                Resolution::NoSubscriber
            }
            Err(status) => {
                return Err(DispatchError::Unavailable(format!(
                    "the registry could not resolve the callback: {}",
                    status.message()
                )));
            }
        };
        let mut cache = self.resolutions.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        // "No subscriber" is kept for at most a second: a partner who has
        // just registered receives events published a second later, not
        // only once the whole TTL has passed.
        let ttl = match resolution {
            Resolution::Active(_) => self.ttl,
            Resolution::NoSubscriber => self.ttl.min(NEGATIVE_TTL),
        };
        cache.insert(key, (resolution.clone(), Instant::now() + ttl));
        Ok(resolution)
    }

    /// Whether `notification_type` is in the registry's catalogue. While the
    /// registry is unreachable, the last catalogue seen answers; with none
    /// seen yet, the type is given the benefit of the doubt, because
    /// publishing must not depend on the registry being up (a delivery for
    /// a type that turns out unknown resolves to no subscriber and is
    /// cancelled, not lost).
    pub async fn type_exists(&self, notification_type: i32) -> bool {
        {
            let catalogue = self.catalogue.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = catalogue.1.is_some_and(|at| at.elapsed() < self.ttl);
            if fresh && catalogue.0.contains(&notification_type) {
                return true;
            }
        }
        let answer = self
            .client
            .clone()
            .list_notification_types(pb::ListNotificationTypesRequest {})
            .await;
        match answer {
            Ok(response) => {
                let ids: HashSet<i32> = response
                    .into_inner()
                    .notification_types
                    .iter()
                    .map(|t| t.notification_type_id)
                    .collect();
                let exists = ids.contains(&notification_type);
                *self.catalogue.lock().unwrap_or_else(|p| p.into_inner()) =
                    (ids, Some(Instant::now()));
                exists
            }
            Err(status) => {
                tracing::warn!(grpc.status = ?status.code(), "cannot refresh the notification-type catalogue");
                let catalogue = self.catalogue.lock().unwrap_or_else(|p| p.into_inner());
                catalogue.1.is_none() || catalogue.0.contains(&notification_type)
            }
        }
    }

    fn note_error_state(&self, registration: Uuid, in_error: bool) {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        if in_error {
            failing.insert(registration);
        } else {
            failing.remove(&registration);
        }
    }

    /// Reports `result` if it changes (or may change) the error state; the
    /// report joins the trace of `trace_context` (the attempt's).
    pub fn report(
        &self,
        target: &Target,
        result: &AttemptResult,
        at: DateTime<Utc>,
        trace_context: Option<String>,
    ) {
        use pb::record_delivery_outcome_request::Outcome;
        let outcome = match result {
            AttemptResult::Delivered { .. } => {
                let was_failing = self
                    .failing
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&target.registration_id);
                if !was_failing {
                    return;
                }
                Outcome::Succeeded(pb::DeliverySucceeded {})
            }
            AttemptResult::Gone { .. } => {
                // Deactivated: forget the cached resolution at once.
                self.resolutions.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, (r, _)| {
                    !matches!(r, Resolution::Active(t) if t.registration_id == target.registration_id)
                });
                Outcome::Gone(pb::EndpointGone {
                    reason: result.reason().unwrap_or_default(),
                })
            }
            AttemptResult::Failed { reason, .. } => {
                self.note_error_state(target.registration_id, true);
                Outcome::Failed(pb::DeliveryFailed {
                    reason: reason.clone(),
                })
            }
        };
        let request = pb::RecordDeliveryOutcomeRequest {
            registration_id: target.registration_id.to_string(),
            callback_url: target.url.clone(),
            occurred_at: Some(prost_types::Timestamp {
                seconds: at.timestamp(),
                nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or_default(),
            }),
            outcome: Some(outcome),
        };
        if self
            .reports
            .try_send(Report {
                request,
                trace_context,
            })
            .is_err()
        {
            // The flag is corrected by the next outcome that is reported.
            tracing::warn!(registration.id = %target.registration_id, "outcome report queue full; report dropped");
        }
    }
}

/// Sends queued outcome reports, retrying a few times while the registry is
/// unavailable. Ends when the client is dropped.
async fn report_outcomes(
    client: RegistryServiceClient<TracedChannel>,
    mut queue: mpsc::Receiver<Report>,
    owner: std::sync::Weak<RegistryClient>,
) {
    while let Some(Report {
        request,
        trace_context,
    }) = queue.recv().await
    {
        let span = tracing::info_span!("report outcome", trace_id = tracing::field::Empty);
        if let Some(traceparent) = &trace_context {
            service_kit::telemetry::adopt(
                &span,
                service_kit::telemetry::from_traceparent(traceparent),
            );
        }
        send_report(&client, request, &owner).instrument(span).await;
    }
}

async fn send_report(
    client: &RegistryServiceClient<TracedChannel>,
    request: pb::RecordDeliveryOutcomeRequest,
    owner: &std::sync::Weak<RegistryClient>,
) {
    let mut backoff = Duration::from_millis(200);
    for attempt in 1..=5 {
        match client
            .clone()
            .record_delivery_outcome(request.clone())
            .await
        {
            Ok(response) => {
                if let (Some(owner), Some(reg)) =
                    (owner.upgrade(), response.into_inner().registration)
                    && let Ok(id) = Uuid::try_parse(&reg.registration_id)
                {
                    owner.note_error_state(id, reg.is_in_error_state);
                }
                break;
            }
            Err(status) if status.code() == Code::Unavailable && attempt < 5 => {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            Err(status) => {
                tracing::warn!(registration.id = %request.registration_id, grpc.status = ?status.code(), "could not report a delivery outcome");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_query_once_per_target() {
        let target = Target::new(
            Uuid::nil(),
            "https://hooks.example.com:8443/cb?token=s3cret".into(),
            None,
            None,
            Vec::new(),
        );
        let attribute = |target: &Target, key: &str| {
            target
                .span_attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(
            attribute(&target, "url.full").as_deref(),
            Some("https://hooks.example.com:8443/cb")
        );
        assert_eq!(
            attribute(&target, "server.address").as_deref(),
            Some("hooks.example.com")
        );
        assert_eq!(attribute(&target, "server.port").as_deref(), Some("8443"));
        let invalid = Target::new(Uuid::nil(), "not a url".into(), None, None, Vec::new());
        assert!(invalid.uri.is_none());
        assert_eq!(attribute(&invalid, "url.full").as_deref(), Some(""));
        assert_eq!(attribute(&invalid, "server.port"), None);
    }
}
