//! The health relay: turns the registry's health events (a registration
//! entered its error state, recovered, or was paused automatically) into
//! notifications of type 900 (`callback.health`), one to the partner and,
//! when `DISPATCHER_HEALTH_OPERATOR_PARTNER` names one, one to the
//! operators' partner. They are delivered, retried and signed like any
//! other event, to whichever registration each has for that type.
//!
//! Exactly once across replicas: a replica takes the cursor's row lock
//! (`SKIP LOCKED`: one relays, the others pass), stores the notifications
//! of the events after it and moves it, in one transaction. Each also
//! carries the idempotency key `health-{id}`.

use std::sync::Arc;
use std::time::Duration;

use callbacks_proto::registry::v1 as pb;
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection as _;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::DispatchError;
use crate::registry::RegistryClient;
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
            match self.relay_all(&stop).await {
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
                    rows.extend(self.notifications(event).await?);
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

    /// The notifications of one health event: the partner's, and the
    /// operators'.
    async fn notifications(&self, event: &pb::HealthEvent) -> Result<Vec<NewEvent>, DispatchError> {
        let partner = Uuid::try_parse(&event.partner_id).map_err(DispatchError::internal)?;
        let occurred_at = event
            .occurred_at
            .and_then(|t| {
                DateTime::<Utc>::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
            })
            .ok_or_else(|| DispatchError::internal("a health event without its time"))?;
        let payload = serde_json::json!({
            "type": "callback.health",
            "event": event.kind,
            "partnerUniqueId": event.partner_id,
            "notificationType": event.notification_type,
            "registrationId": event.registration_id,
            "reason": event.reason,
            "occurredAt": occurred_at,
        })
        .to_string();
        let mut rows = Vec::with_capacity(2);
        for to in std::iter::once(partner).chain(self.operators) {
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
                idempotency_key: Some(format!("health-{}", event.id)),
                ordering_key: None,
                is_test: false,
                has_subscriber,
                occurred_at,
                trace_context: None,
                lease: None,
            });
        }
        Ok(rows)
    }
}
