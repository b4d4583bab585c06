//! The gRPC edge: parses each request into validated values (every field
//! violation reported at once), calls the service, converts the answer.

pub(crate) mod callers;
pub(crate) mod convert;
mod recovery;
pub(crate) mod status;

use std::sync::Arc;

use callbacks_proto::dispatcher::v1 as pb;
use chrono::{Datelike as _, Utc};
use pb::dispatcher_service_server::DispatcherService;
use service_kit::callers::Caller;
use service_kit::validation::{CHECKED, FieldViolation, Violations};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::delivery::ListFilter;
use crate::service::{Dispatcher, Naming, PublishInput};
use convert::{from_status, from_timestamp};

/// The most events one `PublishBatch` may carry.
pub(crate) const MAX_BATCH: usize = 1000;
const MAX_IDEMPOTENCY_KEY: usize = 200;

#[derive(Debug, Clone)]
pub(crate) struct DispatcherGrpc {
    dispatcher: Arc<Dispatcher>,
    max_payload_bytes: usize,
}

impl DispatcherGrpc {
    pub(crate) fn new(dispatcher: Arc<Dispatcher>, max_payload_bytes: usize) -> Self {
        Self {
            dispatcher,
            max_payload_bytes,
        }
    }

    /// Checks one publish request; `field` prefixes the names (for batches).
    fn parse_publish(
        &self,
        request: pb::PublishRequest,
        trace: Option<String>,
    ) -> Result<PublishInput, Vec<FieldViolation>> {
        let mut v = Violations::default();
        let partner_id = v.check(guid("partner_id", &request.partner_id));
        let notification_type = v.check(positive("notification_type", request.notification_type));
        let payload = v.check(json_payload(
            "payload_json",
            request.payload_json.into_bytes(),
            self.max_payload_bytes,
        ));
        for (field, key) in [
            ("idempotency_key", &request.idempotency_key),
            ("ordering_key", &request.ordering_key),
        ] {
            if let Some(violation) = key.as_deref().and_then(|key| key_violation(field, key)) {
                v.push(violation);
            }
        }
        let occurred_at = match &request.occurred_at {
            // When the publisher says nothing, the event occurred as it
            // reached us: a fact about the event, not a queue time.
            #[allow(clippy::disallowed_methods)]
            None => Some(Utc::now()),
            // Years 1 to 9999: what both chrono and Postgres can hold.
            Some(ts) => match from_timestamp(ts).filter(|t| (1..=9999).contains(&t.year())) {
                Some(at) => Some(at),
                None => {
                    v.push(FieldViolation::new(
                        "occurred_at",
                        "must be a valid timestamp between the years 1 and 9999",
                    ));
                    None
                }
            },
        };
        v.finish().map_err(|invalid| invalid.0)?;
        let partner_id = partner_id.expect(CHECKED);
        let span = tracing::Span::current();
        span.record("partner.id", tracing::field::display(partner_id));
        span.record("notification.type", request.notification_type);
        Ok(PublishInput {
            partner_id,
            notification_type: notification_type.expect(CHECKED),
            payload: payload.expect(CHECKED),
            idempotency_key: request.idempotency_key,
            ordering_key: request.ordering_key,
            occurred_at: occurred_at.expect(CHECKED),
            trace_context: trace,
        })
    }
}

/// What is wrong with an idempotency or ordering key, if anything: 1 to
/// [`MAX_IDEMPOTENCY_KEY`] characters, none a control character (Postgres
/// text cannot hold NUL, and no key needs them).
fn key_violation(field: &'static str, key: &str) -> Option<FieldViolation> {
    if key.is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY {
        Some(FieldViolation::new(
            field,
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY} characters"),
        ))
    } else if key.chars().any(char::is_control) {
        Some(FieldViolation::new(
            field,
            "must not contain control characters",
        ))
    } else {
        None
    }
}

fn erasure(erased: crate::storage::erasure::Erased) -> pb::Erasure {
    pb::Erasure {
        erased_events: erased.events,
        cancelled_deliveries: erased.cancelled,
    }
}

/// A `ListDeliveries` request's filter, page number and page size, with
/// the defaults for a page left out (the first, of 20).
fn list_request(request: pb::ListDeliveriesRequest) -> Result<(ListFilter, u32, u32), Status> {
    let mut v = Violations::default();
    let partner = v.check(guid("partner_id", &request.partner_id));
    let kind = request
        .notification_type
        .map(|t| v.check(positive("notification_type", t)));
    let status = match request.status {
        None => None,
        Some(raw) => match pb::DeliveryStatus::try_from(raw).ok().and_then(from_status) {
            Some(status) => Some(status),
            None => {
                v.push(FieldViolation::new(
                    "status",
                    "must be pending, delivered, failed or cancelled",
                ));
                None
            }
        },
    };
    let page_number = if request.page_number == 0 {
        1
    } else {
        request.page_number
    };
    let page_size = if request.page_size == 0 {
        20
    } else {
        request.page_size
    };
    if page_size > 100 {
        v.push(FieldViolation::new(
            "page_size",
            "must be between 1 and 100",
        ));
    }
    if page_number > 100_000 {
        v.push(FieldViolation::new(
            "page_number",
            "must be between 1 and 100000",
        ));
    }
    let (since, until) =
        convert::time_range(&mut v, request.since.as_ref(), request.until.as_ref());
    v.finish()?;
    let filter = ListFilter {
        partner_id: partner.expect(CHECKED),
        notification_type: kind.map(|k| k.expect(CHECKED)),
        status,
        since,
        until,
    };
    Ok((filter, page_number, page_size))
}

fn guid(field: &'static str, raw: &str) -> Result<Uuid, FieldViolation> {
    if raw.is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    Uuid::try_parse(raw).map_err(|_| FieldViolation::new(field, "must be a GUID"))
}

fn positive(field: &'static str, raw: i32) -> Result<i32, FieldViolation> {
    if raw > 0 {
        Ok(raw)
    } else {
        Err(FieldViolation::new(field, "must be a positive integer"))
    }
}

/// A JSON document of bounded size, kept byte for byte.
fn json_payload(
    field: &'static str,
    bytes: Vec<u8>,
    max: usize,
) -> Result<Vec<u8>, FieldViolation> {
    if bytes.is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    if bytes.len() > max {
        return Err(FieldViolation::new(
            field,
            format!("must be at most {max} bytes"),
        ));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)
        .map_err(|e| FieldViolation::new(field, format!("must be valid JSON ({e})")))?;
    Ok(bytes)
}

/// A delivery id and the optional partner it must belong to.
/// A thing named by its id (`field`) and, when the caller is scoped to a
/// partner, that partner's id.
fn owned_ref(
    field: &'static str,
    id: &str,
    partner_id: Option<&str>,
) -> Result<(Uuid, Option<Uuid>), Status> {
    let mut v = Violations::default();
    let id = v.check(guid(field, id));
    let partner = partner_id.map(|p| v.check(guid("partner_id", p)));
    v.finish()?;
    Ok((id.expect(CHECKED), partner.map(|p| p.expect(CHECKED))))
}

type GrpcResult<T> = Result<Response<T>, Status>;

/// A delivery, event or recovery named without its partner is any
/// partner's: operators only.
fn scoped(caller: Option<Caller>, has_partner: bool) -> Result<(), Status> {
    if has_partner || caller.is_some_and(|c| c.is(callers::OPERATOR)) {
        Ok(())
    } else {
        Err(Status::permission_denied(
            "name the partner (partner_id): only operators reach any partner's deliveries, \
             events and recoveries",
        ))
    }
}

#[tonic::async_trait]
impl DispatcherService for DispatcherGrpc {
    async fn publish(
        &self,
        request: Request<pb::PublishRequest>,
    ) -> GrpcResult<pb::PublishResponse> {
        let trace = service_kit::telemetry::current_traceparent();
        let input = self
            .parse_publish(request.into_inner(), trace)
            .map_err(service_kit::validation::invalid_argument)?;
        let stored = self.dispatcher.publish(vec![input], Naming::Single).await?;
        let first = stored
            .into_iter()
            .next()
            .ok_or_else(|| Status::internal("internal error"))?;
        Ok(Response::new(first.into()))
    }

    async fn publish_batch(
        &self,
        request: Request<pb::PublishBatchRequest>,
    ) -> GrpcResult<pb::PublishBatchResponse> {
        let trace = service_kit::telemetry::current_traceparent();
        let events = request.into_inner().events;
        if events.is_empty() || events.len() > MAX_BATCH {
            return Err(service_kit::validation::invalid_argument(vec![
                FieldViolation::new("events", format!("must hold 1 to {MAX_BATCH} events")),
            ]));
        }
        let mut inputs = Vec::with_capacity(events.len());
        let mut violations = Vec::new();
        for (index, event) in events.into_iter().enumerate() {
            match self.parse_publish(event, trace.clone()) {
                Ok(input) => inputs.push(input),
                Err(found) => violations.extend(found.into_iter().map(|v| {
                    FieldViolation::new("events", format!("[{index}].{}: {}", v.field, v.rule))
                })),
            }
        }
        if !violations.is_empty() {
            return Err(service_kit::validation::invalid_argument(violations));
        }
        let stored = self.dispatcher.publish(inputs, Naming::Batch).await?;
        Ok(Response::new(pb::PublishBatchResponse {
            results: stored.into_iter().map(Into::into).collect(),
        }))
    }

    async fn send_test_notification(
        &self,
        request: Request<pb::SendTestNotificationRequest>,
    ) -> GrpcResult<pb::SendTestNotificationResponse> {
        let trace = service_kit::telemetry::current_traceparent();
        let request = request.into_inner();
        let mut v = Violations::default();
        let partner = v.check(guid("partner_id", &request.partner_id));
        let kind = v.check(positive("notification_type", request.notification_type));
        let body = v.check(json_payload(
            "raw_body",
            request.raw_body,
            self.max_payload_bytes,
        ));
        v.finish()?;
        let span = tracing::Span::current();
        if let Some(partner) = &partner {
            span.record("partner.id", tracing::field::display(partner));
        }
        span.record("notification.type", request.notification_type);
        let delivery_id = self
            .dispatcher
            .send_test(
                partner.expect(CHECKED),
                kind.expect(CHECKED),
                body.expect(CHECKED),
                trace,
            )
            .await?;
        Ok(Response::new(pb::SendTestNotificationResponse {
            delivery_id: delivery_id.to_string(),
        }))
    }

    async fn get_delivery(
        &self,
        request: Request<pb::GetDeliveryRequest>,
    ) -> GrpcResult<pb::Delivery> {
        let caller = request.extensions().get::<Caller>().copied();
        let request = request.into_inner();
        let (id, partner) = owned_ref(
            "delivery_id",
            &request.delivery_id,
            request.partner_id.as_deref(),
        )?;
        scoped(caller, partner.is_some())?;
        let delivery = self.dispatcher.get_delivery(id, partner).await?;
        Ok(Response::new(delivery.into()))
    }

    async fn list_deliveries(
        &self,
        request: Request<pb::ListDeliveriesRequest>,
    ) -> GrpcResult<pb::ListDeliveriesResponse> {
        let (filter, page_number, page_size) = list_request(request.into_inner())?;
        let (deliveries, has_next_page) = self
            .dispatcher
            .list_deliveries(filter, page_number, page_size)
            .await?;
        Ok(Response::new(pb::ListDeliveriesResponse {
            deliveries: deliveries.into_iter().map(Into::into).collect(),
            page_number,
            page_size,
            has_previous_page: page_number > 1,
            has_next_page,
        }))
    }

    async fn redeliver(&self, request: Request<pb::RedeliverRequest>) -> GrpcResult<pb::Delivery> {
        let caller = request.extensions().get::<Caller>().copied();
        let request = request.into_inner();
        let (id, partner) = owned_ref(
            "delivery_id",
            &request.delivery_id,
            request.partner_id.as_deref(),
        )?;
        scoped(caller, partner.is_some())?;
        let delivery = self.dispatcher.redeliver(id, partner).await?;
        Ok(Response::new(delivery.into()))
    }

    async fn recover_deliveries(
        &self,
        request: Request<pb::RecoverDeliveriesRequest>,
    ) -> GrpcResult<pb::Recovery> {
        let request = request.into_inner();
        let scope = recovery::scope(&request)?;
        if request.dry_run {
            let plan = self.dispatcher.plan_recovery(&scope).await?;
            return Ok(Response::new(recovery::planned(&scope, plan)));
        }
        let started = self.dispatcher.start_recovery(&scope).await?;
        Ok(Response::new(started.into()))
    }

    async fn erase_event(
        &self,
        request: Request<pb::EraseEventRequest>,
    ) -> GrpcResult<pb::Erasure> {
        let caller = request.extensions().get::<Caller>().copied();
        let request = request.into_inner();
        let (id, partner) =
            owned_ref("event_id", &request.event_id, request.partner_id.as_deref())?;
        scoped(caller, partner.is_some())?;
        let erased = self.dispatcher.erase_event(id, partner).await?;
        Ok(Response::new(erasure(erased)))
    }

    async fn erase_partner_payloads(
        &self,
        request: Request<pb::ErasePartnerPayloadsRequest>,
    ) -> GrpcResult<pb::Erasure> {
        let partner = guid("partner_id", &request.into_inner().partner_id)
            .map_err(|v| service_kit::validation::invalid_argument(vec![v]))?;
        let erased = self.dispatcher.erase_partner(partner).await?;
        Ok(Response::new(erasure(erased)))
    }

    async fn get_recovery(
        &self,
        request: Request<pb::GetRecoveryRequest>,
    ) -> GrpcResult<pb::Recovery> {
        let caller = request.extensions().get::<Caller>().copied();
        let request = request.into_inner();
        let (id, partner) = owned_ref(
            "recovery_id",
            &request.recovery_id,
            request.partner_id.as_deref(),
        )?;
        scoped(caller, partner.is_some())?;
        let recovery = self.dispatcher.get_recovery(id, partner).await?;
        Ok(Response::new(recovery.into()))
    }
}
