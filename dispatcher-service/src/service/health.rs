//! The health relay: turns the registry's health events (a registration
//! entered its error state, recovered, or was paused automatically), and
//! the endpoints throttled for long (`throttled`, from `endpoint_limits`),
//! into notifications of type 900 (`callback.health`), one to the partner and,
//! when `DISPATCHER_HEALTH_OPERATOR_PARTNER` names one, one to the
//! operators' partner. They are delivered, retried and signed like any
//! other event, to whichever registration each has for that type.
//!
//! Exactly once across replicas: a replica takes the cursor's row lock
//! (`SKIP LOCKED`: one relays, the others pass), stores the notifications
//! of the events after it and moves it, in one transaction. Each also
//! carries the idempotency key `health-{id}`. A throttled streak is
//! marked noticed by the update that finds it, in the transaction that
//! stores its notifications.

use std::sync::Arc;
use std::time::Duration;

use callbacks_proto::registry::v1 as pb;
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection as _;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::DispatchError;
use crate::registry::RegistryClient;
use crate::storage::endpoint_limits::{self, Throttled};
use crate::storage::models::NewEvent;
use crate::storage::{DbPool, events, health_relay};

/// The notification type of health events (seeded by the registry).
pub(crate) const HEALTH_NOTIFICATION_TYPE: i32 = 900;

/// Most events relayed per transaction.
const BATCH: u32 = 100;

/// How long the relay waits after a first failure, and at most.
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const LAST_BACKOFF: Duration = Duration::from_secs(60);

/// Where the relay sends: the operators' partner, if any.
#[derive(Debug, Clone)]
pub(crate) struct HealthRelay {
    pub(crate) pool: DbPool,
    pub(crate) registry: Arc<RegistryClient>,
    pub(crate) operators: Option<Uuid>,
    pub(crate) every: Duration,
    /// How long an endpoint is throttled before it is noticed.
    pub(crate) throttled_after: Duration,
}

/// One health notification, whichever its source.
struct Notice {
    key: String,
    kind: String,
    partner: Uuid,
    notification_type: i32,
    registration_id: String,
    reason: Option<String>,
    occurred_at: DateTime<Utc>,
}

impl Notice {
    fn of_event(event: &pb::HealthEvent) -> Result<Self, DispatchError> {
        let partner = Uuid::try_parse(&event.partner_id).map_err(DispatchError::internal)?;
        let occurred_at = event
            .occurred_at
            .and_then(|t| {
                DateTime::<Utc>::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
            })
            .ok_or_else(|| DispatchError::internal("a health event without its time"))?;
        Ok(Self {
            key: format!("health-{}", event.id),
            kind: event.kind.clone(),
            partner,
            notification_type: event.notification_type,
            registration_id: event.registration_id.clone(),
            reason: event.reason.clone(),
            occurred_at,
        })
    }

    fn of_throttled(throttled: &Throttled) -> Self {
        let since = throttled.limited_since;
        Self {
            key: format!(
                "health-throttled-{}-{}",
                throttled.registration_id,
                since.timestamp_micros()
            ),
            kind: "throttled".to_owned(),
            partner: throttled.partner_id,
            notification_type: throttled.notification_type,
            registration_id: throttled.registration_id.to_string(),
            reason: Some(format!(
                "throttled since {}: held or slowed down after 429, 502, 503 or 504 answers or timeouts",
                since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )),
            occurred_at: throttled.noticed_at,
        }
    }
}

impl HealthRelay {
    /// Relays until `stop`: every `every`, batch after batch while they
    /// come back full. After a failure (the registry or the database
    /// unreachable) it waits longer each time, from 5 s up to a minute, so
    /// that an outage is not met with a call every interval.
    pub(crate) async fn run(self, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(self.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = Duration::ZERO;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let relayed = self.relay_all(&stop).await;
            match relayed.and(self.notice_throttled().await) {
                Ok(()) => backoff = Duration::ZERO,
                Err(error) => {
                    backoff = (backoff * 2).clamp(FIRST_BACKOFF, LAST_BACKOFF);
                    tracing::warn!(error = %error, retry_in = ?backoff, "cannot relay health events");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                }
            }
        }
    }

    /// Relays batch after batch while they come back full.
    async fn relay_all(&self, stop: &CancellationToken) -> Result<(), DispatchError> {
        while self.relay_once().await? == BATCH as usize && !stop.is_cancelled() {}
        Ok(())
    }

    /// One transaction: takes the cursor (or passes, if another replica
    /// holds it), stores the next events' notifications, moves the cursor.
    /// Answers how many events it relayed.
    async fn relay_once(&self) -> Result<usize, DispatchError> {
        let mut conn = self.pool.get().await?;
        let relayed = conn
            .transaction::<_, DispatchError, _>(async |conn| {
                let Some(after) = health_relay::take(conn).await? else {
                    return Ok(0);
                };
                let found = self.registry.health_events(after, BATCH).await?;
                let Some(last) = found.last().map(|e| e.id) else {
                    return Ok(0);
                };
                let mut rows = Vec::with_capacity(found.len() * 2);
                for event in &found {
                    rows.extend(self.notifications(Notice::of_event(event)?).await?);
                }
                events::insert(conn, &rows).await?;
                health_relay::advance(conn, last).await?;
                Ok(found.len())
            })
            .await?;
        if relayed > 0 {
            metrics::counter!("callbacks_health_events_relayed_total").increment(relayed as u64);
        }
        Ok(relayed)
    }

    /// Stores the notifications of the endpoints throttled for long, each
    /// streak once.
    async fn notice_throttled(&self) -> Result<(), DispatchError> {
        let mut conn = self.pool.get().await?;
        let after = self.throttled_after;
        conn.transaction::<_, DispatchError, _>(async |conn| {
            let found = endpoint_limits::notice_long_throttled(conn, after).await?;
            let mut rows = Vec::with_capacity(found.len() * 2);
            for throttled in &found {
                rows.extend(self.notifications(Notice::of_throttled(throttled)).await?);
            }
            events::insert(conn, &rows).await?;
            Ok(())
        })
        .await
    }

    /// The notifications of one health notice: the partner's, and the
    /// operators'.
    async fn notifications(&self, notice: Notice) -> Result<Vec<NewEvent>, DispatchError> {
        let payload = serde_json::json!({
            "type": "callback.health",
            "event": notice.kind,
            "partnerUniqueId": notice.partner,
            "notificationType": notice.notification_type,
            "registrationId": notice.registration_id,
            "reason": notice.reason,
            "occurredAt": notice.occurred_at,
        })
        .to_string();
        let mut rows = Vec::with_capacity(2);
        for to in std::iter::once(notice.partner).chain(self.operators) {
            let has_subscriber = self
                .registry
                .has_subscriber(to, HEALTH_NOTIFICATION_TYPE)
                .await
                .unwrap_or(true);
            rows.push(NewEvent {
                id: Uuid::now_v7(),
                partner_id: to,
                notification_type: HEALTH_NOTIFICATION_TYPE,
                payload: payload.clone().into(),
                idempotency_key: Some(notice.key.clone()),
                ordering_key: None,
                is_test: false,
                has_subscriber,
                occurred_at: notice.occurred_at,
                trace_context: None,
                lease: None,
            });
        }
        Ok(rows)
    }
}
