//! The task of one delivery in flight: resolve its registration (cached),
//! take a slot on its endpoint or park, attempt it, decide what follows
//! (`domain::queue::decide`), and hand the outcome to the completer; then
//! attempt whatever was parked behind it on the same endpoint.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::completer::{Finished, Report};
use super::endpoints::{Answered, Placement, Ready};
use super::http::AttemptOf;
use super::jitter_draw;
use super::throttle::Health;
use super::worker::{InFlight, Worker};
use crate::domain::queue::{self, AttemptRecord, Claim, Outcome};
use crate::domain::{AttemptResult, DeliveryStatus, FailureKind};
use crate::registry::{Resolution, Target};

/// The attempt metrics, registered once: the `counter!`-style macros look
/// their series up (and copy its labels) on every call.
#[derive(Debug)]
pub(super) struct Meters {
    in_flight: metrics::Gauge,
    delivered: metrics::Counter,
    gone: metrics::Counter,
    failed: metrics::Counter,
    /// One per kind, in the order of `FailureKind::ALL`.
    failures: [metrics::Counter; FailureKind::ALL.len()],
    duration: metrics::Histogram,
}

impl Meters {
    pub(super) fn new() -> Self {
        let attempts = |outcome: &'static str| metrics::counter!("callbacks_delivery_attempts_total", "outcome" => outcome);
        Self {
            in_flight: metrics::gauge!("callbacks_deliveries_in_flight"),
            delivered: attempts("delivered"),
            gone: attempts("gone"),
            failed: attempts("failed"),
            failures: FailureKind::ALL.map(|kind| metrics::counter!("callbacks_delivery_failures_total", "kind" => kind.code())),
            duration: metrics::histogram!("callbacks_delivery_attempt_duration_seconds"),
        }
    }
}

impl Meters {
    fn failed_as(&self, kind: FailureKind) -> &metrics::Counter {
        let at = FailureKind::ALL.iter().position(|k| *k == kind);
        &self.failures[at.unwrap_or_default()]
    }
}

impl Worker {
    /// Starts the task that attempts one claimed or handed-off delivery.
    pub(super) fn start(
        self: &Arc<Self>,
        tasks: &mut JoinSet<()>,
        in_flight: InFlight,
        done: &mpsc::Sender<Finished>,
    ) {
        self.in_flight
            .lock()
            .insert(in_flight.claim.id, in_flight.claim.hold);
        // Boxed: the future (the whole attempt, hyper's included) is large,
        // and unboxed it is copied on its way into the task.
        tasks.spawn(Box::pin(self.clone().deliver(in_flight, done.clone())));
    }

    async fn deliver(self: Arc<Self>, in_flight: InFlight, done: mpsc::Sender<Finished>) {
        // Holding the global slot until the end.
        let InFlight {
            claim,
            slot: _slot,
            claimed_at,
            seen_at,
        } = in_flight;
        let Some(target) = self.resolve(&claim, seen_at, &done).await else {
            return;
        };
        let mut next = match self.endpoints.place(claim, claimed_at, target) {
            Placement::Attempt(ready) => Some(ready),
            Placement::Parked => None,
            Placement::Refused(claim, wait) => {
                // Its endpoint is saturated and its parking full: back to the
                // queue, unattempted.
                self.hand_back(&done, &claim, wait).await;
                return;
            }
        };
        // Holding one of the endpoint's slots (and our global slot), attempt
        // this delivery, then whatever was parked behind it.
        while let Some(ready) = next {
            next = self.attempt_in_turn(ready, &done).await;
        }
    }

    /// The registration `claim` goes to; `None` when it was handed back
    /// (the registry cannot answer) or cancelled (nobody subscribes).
    async fn resolve(
        &self,
        claim: &Claim,
        seen_at: Instant,
        done: &mpsc::Sender<Finished>,
    ) -> Option<Arc<Target>> {
        let since = self
            .became_due(claim)
            .map_or(seen_at, |due| due.min(seen_at));
        match self
            .registry
            .resolve(claim.partner_id, claim.notification_type, since)
            .await
        {
            Ok(Resolution::Active(target)) if target.paused => {
                metrics::counter!("callbacks_deliveries_deferred_total", "reason" => "paused")
                    .increment(1);
                self.hand_back(done, claim, self.settings.paused_recheck)
                    .await;
                None
            }
            Ok(Resolution::Active(target)) => Some(target),
            Ok(Resolution::NoSubscriber) => {
                let outcome = Outcome::cancel(claim, self.clock.now(), "no active registration");
                self.finish(done, Finished::unreported(outcome)).await;
                None
            }
            Err(error) => {
                // Logged once per failed registry call (`registry`), not
                // once per delivery it fails.
                tracing::debug!(delivery.id = %claim.id, error = %error, "cannot resolve the callback; deferring");
                metrics::counter!("callbacks_deliveries_deferred_total", "reason" => "registry_unavailable").increment(1);
                // Spread, so that a backlog deferred together does not
                // come due together.
                let wait = service_kit::freshness::jittered(self.settings.defer_for * 2);
                self.hand_back(done, claim, wait).await;
                None
            }
        }
    }

    /// Attempts `ready` (or hands it back if its lease could run out
    /// meanwhile), and answers the next delivery parked on its endpoint.
    async fn attempt_in_turn(&self, ready: Ready, done: &mpsc::Sender<Finished>) -> Option<Ready> {
        let Ready {
            permit,
            claim,
            claimed_at,
            target,
        } = ready;
        let mut answered = None;
        if self.endpoints.too_late(claimed_at) {
            self.hand_back(done, &claim, Duration::ZERO).await;
        } else {
            let finished = self.attempt(&claim, target.clone()).await;
            // The attempt's own measure (milliseconds are plenty for a
            // pace compared with a floor of a second).
            let took =
                finished.outcome.attempt.as_ref().map(|a| {
                    Duration::from_millis(u64::try_from(a.duration_ms).unwrap_or_default())
                });
            let health = finished.report.as_ref().map(|r| Health::of(&r.result));
            answered = took.zip(health).map(|(took, health)| Answered {
                took,
                health,
                partner_id: claim.partner_id,
                notification_type: claim.notification_type,
            });
            self.finish(done, finished).await;
        }
        let (following, (stale, wait)) =
            self.endpoints
                .next_parked(target.registration_id, permit, answered);
        for claim in stale {
            self.hand_back(done, &claim, wait).await;
        }
        following
    }

    /// When `claim` became due, as a moment here no earlier than that
    /// (known for a claim from the cursor). A registry change answered
    /// before then applies to its attempt: an event published after the
    /// change became due after it (its due time is its publish
    /// transaction's start), as did a retry or a redelivery scheduled
    /// after it. So a change-log call that started after this moment
    /// serves the delivery; a backlog is served by the last one, and a
    /// new call is needed only for what became due since.
    fn became_due(&self, claim: &Claim) -> Option<Instant> {
        self.clock.no_earlier_than(claim.hold.was_due?)
    }

    /// Hands `claim` back to the queue, unattempted, due after `after`.
    pub(super) async fn hand_back(
        &self,
        done: &mpsc::Sender<Finished>,
        claim: &Claim,
        after: Duration,
    ) {
        let outcome = Outcome::release(claim.id, claim.hold, self.clock.now() + after);
        self.finish(done, Finished::unreported(outcome)).await;
    }

    /// Hands a finished delivery to the completer, and only then forgets it
    /// as in flight: a task aborted at shutdown while it waits to send
    /// leaves the delivery for the loop to release.
    async fn finish(&self, done: &mpsc::Sender<Finished>, finished: Finished) {
        let (id, hold) = (finished.outcome.delivery_id, finished.outcome.hold);
        if done.send(finished).await.is_err() {
            tracing::error!(delivery.id = %id, "completer gone; the lease will expire and the delivery be retried");
            return;
        }
        // Only this claim's entry: a later claim of the same delivery
        // (after this one's lease ran out) keeps its own.
        let mut in_flight = self.in_flight.lock();
        if in_flight.get(&id) == Some(&hold) {
            in_flight.remove(&id);
        }
    }

    /// Makes `claim`'s attempt on `target` and decides what follows.
    async fn attempt(&self, claim: &Claim, target: Arc<Target>) -> Finished {
        self.meters.in_flight.increment(1.0);
        let of = AttemptOf {
            delivery_id: claim.id,
            partner_id: claim.partner_id,
            notification_type: claim.notification_type,
            attempt_number: claim.attempt_count + 1,
            trace_context: claim.trace_context.as_deref(),
            started_at: self.clock.now(),
            is_test: claim.is_test,
        };
        let made = self.deliverer.attempt(&target, of, &claim.payload).await;
        self.meters.in_flight.decrement(1.0);
        match &made.result {
            AttemptResult::Delivered { .. } => &self.meters.delivered,
            AttemptResult::Gone { .. } => &self.meters.gone,
            AttemptResult::Failed { .. } => &self.meters.failed,
        }
        .increment(1);
        if let Some(kind) = made.result.failure() {
            self.meters.failed_as(kind).increment(1);
        }
        self.meters.duration.record(made.duration.as_secs_f64());
        let decided = queue::decide(
            &made.result,
            claim.series_attempts,
            &self.policy,
            target
                .retry_waits
                .as_deref()
                .unwrap_or(self.policy.schedule()),
            self.clock.now(),
            jitter_draw(),
        );
        log_attempt(claim, &made, decided.0);
        let record = AttemptRecord {
            registration_id: target.registration_id,
            started_at: made.started_at,
            duration_ms: i32::try_from(made.duration.as_millis()).unwrap_or(i32::MAX),
            response_status: made.result.status().map(i32::from),
            response_excerpt: made.excerpt.clone(),
            failure: made.result.failure(),
        };
        Finished {
            outcome: Outcome::from_attempt(claim, decided, &made.result, record),
            report: Some(Report {
                at: made.started_at,
                target,
                result: made.result,
                trace_context: claim.trace_context.clone(),
            }),
        }
    }
}

/// A line per attempt: at `debug` for a delivery, at `info` for the rest.
/// A line at `info` for each success costs more instructions than the
/// whole delivery otherwise does, and repeats what the attempt log, the
/// metrics and the traces already hold.
fn log_attempt(claim: &Claim, made: &super::http::Attempted, status: DeliveryStatus) {
    macro_rules! attempt_line {
        ($level:expr) => {
            tracing::event!(
                $level,
                delivery.id = %claim.id,
                delivery.attempt = claim.attempt_count + 1,
                partner.id = %claim.partner_id,
                notification.type = claim.notification_type,
                http.response.status_code = made.result.status(),
                outcome = status.as_str(),
                error = made.result.reason(),
                trace_id = %made.trace_id,
                "delivery attempt"
            )
        };
    }
    if status == DeliveryStatus::Delivered {
        attempt_line!(tracing::Level::DEBUG);
    } else {
        attempt_line!(tracing::Level::INFO);
    }
}
