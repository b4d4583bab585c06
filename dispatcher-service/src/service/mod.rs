//! The dispatcher's use cases between the gRPC edge and storage: durable
//! publish (single and batch), test notifications, the delivery log, and
//! recovery in bulk ([`recovery`]).

mod erasure;
pub(crate) mod health;
pub(crate) mod housekeeping;
pub(crate) mod recovery;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::delivery::worker::{Reserved, Worker};
use crate::domain::error::FieldViolation;
use crate::domain::queue::{Claim, Hold};
use crate::domain::{Delivery, DispatchError};
use crate::registry::{RegistryClient, Resolution, TypeRules};
use crate::storage::DbPool;
use crate::storage::commit::Committer;
use crate::storage::deliveries::{self, ListFilter};
use crate::storage::events::Stored;
use crate::storage::models::NewEvent;

/// Committer tasks: enough that one gathers the next batch while another
/// writes, few enough to leave the pool's connections to the workers.
const COMMITTERS: usize = 3;

/// One event to publish, already validated.
#[derive(Debug, Clone)]
pub(crate) struct PublishInput {
    pub partner_id: Uuid,
    pub notification_type: i32,
    pub payload: Vec<u8>,
    pub idempotency_key: Option<String>,
    pub ordering_key: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub trace_context: Option<String>,
}

/// How a payload's violations are named: a single publish's
/// `payload_json`, or a batch event's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Naming {
    Single,
    Batch,
}

impl Naming {
    fn payload_violation(self, index: usize, rule: &str) -> FieldViolation {
        match self {
            Self::Single => FieldViolation::new("payload_json", rule),
            Self::Batch => FieldViolation::new("events", format!("[{index}].payload_json {rule}")),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Dispatcher {
    pool: DbPool,
    committer: Committer,
    registry: Arc<RegistryClient>,
    /// The local delivery loop, woken when this process stores new work.
    worker: Option<Arc<Worker>>,
}

impl Dispatcher {
    pub(crate) fn new(
        pool: DbPool,
        registry: Arc<RegistryClient>,
        worker: Option<Arc<Worker>>,
    ) -> Self {
        Self {
            committer: Committer::start(pool.clone(), COMMITTERS),
            pool,
            registry,
            worker,
        }
    }

    fn wake(&self) {
        if let Some(worker) = &self.worker {
            worker.wake();
        }
    }

    /// Leases as many of `rows`' deliveries as this process's delivery loop
    /// has free slots for, so that they are stored leased to it and handed
    /// over after the commit (no claim). Keyed by event id.
    fn lease_locally(&self, rows: &mut [NewEvent]) -> HashMap<Uuid, (Reserved, NewEvent)> {
        let Some(worker) = &self.worker else {
            return HashMap::new();
        };
        // An ordered delivery may have to wait for the one ahead of it in
        // its lane: it is left for a claim.
        let local_kind = |r: &NewEvent| r.has_subscriber && r.ordering_key.is_none();
        let wanted = rows.iter().filter(|r| local_kind(r)).count();
        let mut reserved = worker.reserve(wanted).into_iter();
        let mut local = HashMap::new();
        for row in rows.iter_mut().filter(|r| local_kind(r)) {
            let Some(slot) = reserved.next() else { break };
            row.lease = Some(slot.lease);
            local.insert(row.id, (slot, row.clone()));
        }
        local
    }

    /// Commits `rows`, leasing to this process's delivery loop as many of
    /// their deliveries as it has room for, and hands those over after the
    /// commit. Commit and hand-off run in a task of their own, so that a
    /// caller that goes away (its deadline passed) cannot leave committed
    /// deliveries leased to nobody until their lease ends.
    async fn store(&self, mut rows: Vec<NewEvent>) -> Result<Vec<Stored>, DispatchError> {
        let local = self.lease_locally(&mut rows);
        let committer = self.committer.clone();
        let worker = self.worker.clone();
        tokio::spawn(async move {
            let stored = committer.store(rows).await?;
            hand_off(worker.as_ref(), &stored, local);
            Ok(stored)
        })
        .await
        .map_err(DispatchError::internal)?
    }

    /// Stores the events (all or none) and answers once they are committed.
    /// Unknown types, and payloads that break their type's schema, are
    /// refused (every violation named, as `naming` says); an event whose
    /// partner has no active registration for its type is stored without a
    /// delivery.
    pub(crate) async fn publish(
        &self,
        inputs: Vec<PublishInput>,
        naming: Naming,
    ) -> Result<Vec<Stored>, DispatchError> {
        self.check_against_catalogue(&inputs, naming).await?;
        let mut subscribed = HashMap::new();
        for input in &inputs {
            let key = (input.partner_id, input.notification_type);
            if subscribed.contains_key(&key) {
                continue;
            }
            let has_subscriber = match self.registry.has_subscriber(key.0, key.1).await {
                Ok(subscribed) => subscribed,
                // The registry is down: store a delivery anyway; the attempt
                // resolves again and cancels it if there is no subscriber.
                Err(error) => {
                    tracing::warn!(error = %error, "publishing without knowing the subscriber");
                    true
                }
            };
            subscribed.insert(key, has_subscriber);
        }
        let rows: Vec<NewEvent> = inputs
            .into_iter()
            .map(|input| NewEvent {
                id: Uuid::now_v7(),
                has_subscriber: subscribed[&(input.partner_id, input.notification_type)],
                partner_id: input.partner_id,
                notification_type: input.notification_type,
                payload: input.payload.into(),
                idempotency_key: input.idempotency_key,
                ordering_key: input.ordering_key,
                is_test: false,
                occurred_at: input.occurred_at,
                trace_context: input.trace_context,
                lease: None,
            })
            .collect();
        let stored = self.store(rows).await?;
        for s in &stored {
            let outcome = match (s.duplicate, s.delivery_id) {
                (true, _) => "duplicate",
                (false, Some(_)) => "delivery",
                (false, None) => "no_subscriber",
            };
            metrics::counter!("callbacks_events_published_total", "outcome" => outcome)
                .increment(1);
        }
        Ok(stored)
    }

    /// Refuses unknown types, then payloads that break their type's schema.
    async fn check_against_catalogue(
        &self,
        inputs: &[PublishInput],
        naming: Naming,
    ) -> Result<(), DispatchError> {
        let types: HashSet<i32> = inputs.iter().map(|i| i.notification_type).collect();
        let mut unknown = Vec::new();
        let mut schemas = HashMap::new();
        for kind in types {
            match self.registry.type_rules(kind).await {
                TypeRules::Unknown => unknown.push(kind),
                TypeRules::Known(Some(schema)) => {
                    schemas.insert(kind, schema);
                }
                TypeRules::Known(None) => {}
            }
        }
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return Err(FieldViolation::new(
                "notification_type",
                format!("{unknown:?} is not a supported notification type"),
            )
            .into());
        }
        let mut violations = Vec::new();
        for (index, input) in inputs.iter().enumerate() {
            let Some(schema) = schemas.get(&input.notification_type) else {
                continue;
            };
            violations.extend(
                schema
                    .violations(&input.payload)
                    .into_iter()
                    .map(|rule| naming.payload_violation(index, &rule)),
            );
        }
        if violations.is_empty() {
            Ok(())
        } else {
            metrics::counter!("callbacks_events_refused_total", "reason" => "payload_schema")
                .increment(1);
            Err(DispatchError::InvalidArgument(violations))
        }
    }

    /// Queues `raw_body` as a test notification to the active registration.
    pub(crate) async fn send_test(
        &self,
        partner_id: Uuid,
        notification_type: i32,
        raw_body: Vec<u8>,
        trace_context: Option<String>,
    ) -> Result<Uuid, DispatchError> {
        // Fresh as of now: a partner that has just registered can test at
        // once.
        let now = std::time::Instant::now();
        match self
            .registry
            .resolve(partner_id, notification_type, now)
            .await?
        {
            Resolution::Active(_) => {}
            Resolution::NoSubscriber => {
                return Err(DispatchError::NoActiveRegistration {
                    partner: partner_id,
                    notification_type,
                });
            }
        }
        if let TypeRules::Known(Some(schema)) = self.registry.type_rules(notification_type).await {
            let violations: Vec<_> = schema
                .violations(&raw_body)
                .into_iter()
                .map(|rule| FieldViolation::new("raw_body", rule))
                .collect();
            if !violations.is_empty() {
                return Err(DispatchError::InvalidArgument(violations));
            }
        }
        let rows = vec![NewEvent {
            id: Uuid::now_v7(),
            partner_id,
            notification_type,
            payload: raw_body.into(),
            idempotency_key: None,
            ordering_key: None,
            is_test: true,
            has_subscriber: true,
            // The echo occurs as it is asked for: a fact about the event,
            // not a queue time.
            #[allow(clippy::disallowed_methods)]
            occurred_at: Utc::now(),
            trace_context,
            lease: None,
        }];
        let stored = self.store(rows).await?;
        metrics::counter!("callbacks_test_notifications_total").increment(1);
        stored
            .first()
            .and_then(|s| s.delivery_id)
            .ok_or_else(|| DispatchError::internal("a test event was stored without its delivery"))
    }

    pub(crate) async fn get_delivery(
        &self,
        id: Uuid,
        partner: Option<Uuid>,
    ) -> Result<Delivery, DispatchError> {
        let mut conn = self.pool.get().await?;
        deliveries::get(&mut conn, id, partner)
            .await?
            .ok_or(DispatchError::DeliveryNotFound(id))
    }

    /// A page of a partner's deliveries, newest first; the bool says whether
    /// a next page exists.
    pub(crate) async fn list_deliveries(
        &self,
        filter: ListFilter,
        page_number: u32,
        page_size: u32,
    ) -> Result<(Vec<Delivery>, bool), DispatchError> {
        let mut conn = self.pool.get().await?;
        let offset = i64::from(page_number - 1) * i64::from(page_size);
        let mut rows =
            deliveries::list(&mut conn, filter, offset, i64::from(page_size) + 1).await?;
        let has_next = rows.len() > page_size as usize;
        rows.truncate(page_size as usize);
        Ok((rows, has_next))
    }

    pub(crate) async fn redeliver(
        &self,
        id: Uuid,
        partner: Option<Uuid>,
    ) -> Result<Delivery, DispatchError> {
        let mut conn = self.pool.get().await?;
        let delivery = deliveries::redeliver(&mut conn, id, partner).await?;
        self.wake();
        Ok(delivery)
    }
}

/// Hands the committed deliveries leased at publish to the delivery loop,
/// and wakes the claimers for the others. Unused reservations (duplicate
/// keys) free their slots when dropped.
fn hand_off(
    worker: Option<&Arc<Worker>>,
    stored: &[Stored],
    mut local: HashMap<Uuid, (Reserved, NewEvent)>,
) {
    let Some(worker) = worker else {
        return;
    };
    let mut left_for_claim = false;
    for s in stored.iter().filter(|s| !s.duplicate) {
        let Some(delivery_id) = s.delivery_id else {
            continue;
        };
        match local.remove(&s.event_id) {
            Some((reserved, event)) => worker.hand_off(
                Claim {
                    id: delivery_id,
                    hold: Hold::handed_off(reserved.lease.token),
                    event_id: event.id,
                    partner_id: event.partner_id,
                    notification_type: event.notification_type,
                    attempt_count: 0,
                    series_attempts: 0,
                    is_test: event.is_test,
                    payload: event.payload,
                    trace_context: event.trace_context,
                    ordering_key: None,
                },
                reserved,
            ),
            None => left_for_claim = true,
        }
    }
    if left_for_claim {
        worker.wake();
    }
}
