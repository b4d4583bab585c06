//! What the dispatcher asks the registry, and how rarely it asks.
//!
//! - **Resolution** ((partner, type) -> URL, credentials, secrets, or "no
//!   active registration") is cached, and a cached answer is used only
//!   once the registry's changes are known up to the moment the delivery
//!   was claimed or handed off ([`Freshness`]; the cache is in [`cache`]).
//!   So whatever the registry answered to a partner's change before an
//!   event was published, the event's attempt acts on it, on every
//!   replica; and one change-log call serves every delivery claimed
//!   before it started, instead of a resolution per delivery.
//! - **The catalogue** of notification types is cached the same way (a
//!   read is stale once a catalogue change after it is applied), to refuse
//!   unknown types and apply each type's payload schema at publish.
//! - **Outcomes** are reported when they change the registration's error
//!   state: every failure (it sets or updates the reason) but a success
//!   only when the registration is believed to be in error state. Reports
//!   go through a queue to a background task, so delivery never waits on
//!   the registry.

mod cache;
mod catalogue;
mod health;
mod target;

use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use callbacks_proto::registry::v1 as pb;
use callbacks_proto::registry::v1::registry_service_client::RegistryServiceClient;
use chrono::{DateTime, Utc};
use foldhash::{HashSet, HashSetExt as _};
use secrecy::SecretString;
use service_kit::freshness::Freshness;
use service_kit::telemetry::{Outbound, OutboundChannel};
use tokio::sync::mpsc;
use tonic::Code;
use tonic::transport::Endpoint;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::domain::signature::SigningKey;
use crate::domain::{AttemptResult, DispatchError};

pub use cache::Resolution;
use cache::{Key, Resolutions};
use catalogue::Catalogue;
pub use catalogue::TypeRules;
pub use target::Target;

#[derive(Debug)]
pub struct RegistryClient {
    client: RegistryServiceClient<OutboundChannel>,
    /// The longest a resolution is kept, changes or none.
    ttl: Duration,
    resolutions: Arc<Mutex<Resolutions>>,
    freshness: Arc<Freshness>,
    catalogue: Mutex<Catalogue>,
    /// Registrations believed to be in error state.
    failing: Mutex<HashSet<Uuid>>,
    reports: mpsc::Sender<Report>,
}

/// How old the newest applied change may be when a publish reads the
/// catalogue: a schema change applies to publishes within this long.
pub const CATALOGUE_LAG: Duration = Duration::from_secs(1);

/// A `ListChanges` call, as `Freshness` runs it.
type SyncCall = std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// An outcome to report, with the trace of the attempt it came from.
#[derive(Debug)]
struct Report {
    request: pb::RecordDeliveryOutcomeRequest,
    trace_context: Option<String>,
}

impl RegistryClient {
    /// A client of the registry at `url`, calling with `token`; also
    /// returns the reporter task to spawn.
    pub fn new(
        url: &str,
        token: Option<&str>,
        ttl: Duration,
    ) -> anyhow::Result<(Arc<Self>, impl Future<Output = ()> + Send + 'static)> {
        let channel = Endpoint::from_shared(url.to_owned())?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .connect_lazy();
        let client = RegistryServiceClient::with_interceptor(channel, Outbound::new(token)?);
        let (reports, queue) = mpsc::channel(10_000);
        let this = Arc::new(Self {
            client: client.clone(),
            ttl,
            resolutions: Arc::new(Mutex::new(Resolutions::new())),
            freshness: Freshness::new(),
            catalogue: Mutex::new(Catalogue::new()),
            failing: Mutex::new(HashSet::new()),
            reports,
        });
        Ok((
            this.clone(),
            report_outcomes(client, queue, Arc::downgrade(&this)),
        ))
    }

    fn resolutions(&self) -> parking_lot::MutexGuard<'_, Resolutions> {
        self.resolutions.lock()
    }

    /// One `ListChanges` call, applied to the cache.
    fn sync(&self) -> SyncCall {
        let (client, resolutions) = (self.client.clone(), self.resolutions.clone());
        Box::pin(async move {
            let after = resolutions.lock().applied();
            let request = pb::ListChangesRequest {
                after_version: after,
            };
            let answer = client.clone().list_changes(request).await.map_err(|status| {
                let error = status.message();
                tracing::warn!(grpc.status = ?status.code(), error, "cannot learn the registry's changes; deliveries wait");
                format!("the registry's changes are unknown: {error}")
            })?;
            let answer = answer.into_inner();
            resolutions.lock().apply(&answer);
            Ok(())
        })
    }

    /// Where (partner, type) delivers, as of a registry read that began at
    /// or after `since` (the claim's answer, or the moment the delivery
    /// became due, if earlier): from the cache once the changes up to `since` are
    /// applied to it, else from the registry. The changes are asked first
    /// either way: that call is shared, so when the registry is down one
    /// failure answers every waiting delivery, not a call per delivery.
    pub async fn resolve(
        &self,
        partner: Uuid,
        notification_type: i32,
        since: Instant,
    ) -> Result<Resolution, DispatchError> {
        let key = (partner, notification_type);
        self.freshness
            .since(since, || self.sync())
            .await
            .map_err(DispatchError::Unavailable)?;
        if let Some(hit) = self.resolutions().get(key) {
            return Ok(hit);
        }
        self.fetch(key).await
    }

    /// Starts learning the registry's changes up to `since` without waiting
    /// (a later [`RegistryClient::resolve`] with `since` then finds the
    /// call under way, or done).
    pub fn learn_changes_since(&self, since: Instant) {
        let (freshness, sync) = (self.freshness.clone(), self.sync());
        tokio::spawn(async move {
            // A failure is seen, and answered, by `resolve`.
            let _ = freshness.since(since, || sync).await;
        });
    }

    /// How long until the registry is asked again after it failed, if it
    /// did: claiming work that cannot be resolved meanwhile only churns
    /// the queue.
    pub fn unavailable_for(&self) -> Option<Duration> {
        self.freshness.backing_off()
    }

    /// Whether the registry answers a change-log call started now (which
    /// also brings the cache up to date). After a failure, the claim loop
    /// asks this once per backoff before it claims again.
    pub async fn answers(&self) -> bool {
        self.freshness
            .since(Instant::now(), || self.sync())
            .await
            .is_ok()
    }

    /// Whether (partner, type) has a subscriber, for a publish. A cached
    /// active registration is enough: the attempt resolves again, and
    /// cancels the delivery if it is gone by then. A cached "no subscriber"
    /// is not: the event would be stored without a delivery.
    pub async fn has_subscriber(
        &self,
        partner: Uuid,
        notification_type: i32,
    ) -> Result<bool, DispatchError> {
        let key = (partner, notification_type);
        if let Some(Resolution::Active(_)) = self.resolutions().get(key) {
            return Ok(true);
        }
        let resolution = self
            .resolve(partner, notification_type, Instant::now())
            .await?;
        Ok(matches!(resolution, Resolution::Active(_)))
    }

    /// Asks the registry, and keeps the answer.
    async fn fetch(&self, key: Key) -> Result<Resolution, DispatchError> {
        let tag = self.resolutions().applied();
        let answer = self
            .client
            .clone()
            .resolve_callback(pb::ResolveCallbackRequest {
                partner_id: key.0.to_string(),
                notification_type: key.1,
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
                let mut target = Target::new(
                    registration_id,
                    r.callback_url,
                    r.callback_user_name,
                    r.callback_password.map(SecretString::from),
                    signing_keys,
                    &r.retry_schedule_seconds,
                );
                target.paused = r.paused;
                Resolution::Active(Arc::new(target))
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
        let expires = Instant::now() + self.ttl;
        self.resolutions()
            .insert(key, resolution.clone(), tag, expires);
        Ok(resolution)
    }

    /// What publishing may do with `notification_type`: refuse it as
    /// unknown, or check its payloads against its schema.
    ///
    /// The catalogue read is used once the registry's changes up to
    /// [`CATALOGUE_LAG`] ago are applied and none of them touched the
    /// catalogue; else it is read again. So a schema an operator sets
    /// applies to publishes within that lag on every replica, at the cost
    /// of at most one change-log call per lag when nothing else syncs.
    /// While the registry is unreachable, the last catalogue seen answers;
    /// with none seen yet, the type is given the benefit of the doubt,
    /// because publishing must not depend on the registry being up (a
    /// delivery for a type that turns out unknown resolves to no subscriber
    /// and is cancelled, not lost).
    pub async fn type_rules(&self, notification_type: i32) -> TypeRules {
        let now = Instant::now();
        let since = now.checked_sub(CATALOGUE_LAG).unwrap_or(now);
        let synced = self.freshness.since(since, || self.sync()).await;
        let changed = self.resolutions().catalogue_changed();
        {
            let catalogue = self.catalogue();
            let usable = catalogue.is_current(changed, self.ttl)
                || (synced.is_err() && catalogue.was_read());
            if usable && let rules @ TypeRules::Known(_) = catalogue.rules(notification_type) {
                return rules;
            }
            if synced.is_err() {
                return if catalogue.was_read() {
                    TypeRules::Unknown
                } else {
                    TypeRules::Known(None)
                };
            }
        }
        let tag = self.resolutions().applied();
        let answer = self
            .client
            .clone()
            .list_notification_types(pb::ListNotificationTypesRequest {})
            .await;
        let mut catalogue = self.catalogue();
        match answer {
            Ok(response) => catalogue.refresh(response.into_inner().notification_types, tag),
            Err(status) => {
                tracing::warn!(grpc.status = ?status.code(), "cannot read the notification-type catalogue");
                if !catalogue.was_read() {
                    return TypeRules::Known(None);
                }
            }
        }
        catalogue.rules(notification_type)
    }

    fn catalogue(&self) -> parking_lot::MutexGuard<'_, Catalogue> {
        self.catalogue.lock()
    }

    fn note_error_state(&self, registration: Uuid, in_error: bool) {
        let mut failing = self.failing.lock();
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
                let was_failing = self.failing.lock().remove(&target.registration_id);
                if !was_failing {
                    return;
                }
                Outcome::Succeeded(pb::DeliverySucceeded {})
            }
            AttemptResult::Gone { .. } => {
                // Deactivated: forget the cached resolution at once.
                self.resolutions()
                    .forget_registration(target.registration_id);
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
    client: RegistryServiceClient<OutboundChannel>,
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
    client: &RegistryServiceClient<OutboundChannel>,
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
