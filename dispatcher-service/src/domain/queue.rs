//! A delivery as the queue hands it out and takes it back: the [`Claim`]
//! a worker holds, the [`Hold`] that fences what it writes, and the
//! [`Outcome`] it writes, built only through constructors that say what
//! happened (released, cancelled, attempted). [`decide`] turns an
//! attempt's result into the delivery's next state.
//!
//! Storage reads claims from rows and writes outcomes (`storage::queue`);
//! nothing here knows how.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{AttemptResult, DeliveryStatus, FailureKind, NextStep, RetryPolicy};

/// What holds a delivery for a worker, and so what fences its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// The claim's token: its batch's, or the hand-off's (see `batch`).
    pub token: Uuid,
    /// The delivery's due time when a claim took it from the cursor. Its
    /// outcome is written only if the row is still pending at that due
    /// time with no token on it, and the batch's `claims` row is still
    /// there: any later write to the row (an outcome, a sweep's token)
    /// changes the one or the other, and a claim lost in a database crash
    /// has no row (the cursor went back, and another claim may hold the
    /// delivery with the same due time). `None` when the token is on the
    /// row (a hand-off, or a sweep), and the outcome is written only under
    /// it.
    pub was_due: Option<DateTime<Utc>>,
    /// Whether `token` names a `claims` row, deleted once the batch's last
    /// outcome is written.
    pub batch: bool,
}

impl Hold {
    /// A delivery stored at publish already leased to this process.
    pub fn handed_off(token: Uuid) -> Self {
        Self {
            token,
            was_due: None,
            batch: false,
        }
    }
}

/// A delivery held by this process, with what is needed to attempt it.
#[derive(Debug, Clone)]
pub struct Claim {
    pub id: Uuid,
    pub hold: Hold,
    pub event_id: Uuid,
    pub partner_id: Uuid,
    pub notification_type: i32,
    /// Attempts made so far, over every series (redeliveries included).
    pub attempt_count: i32,
    /// Attempts made in the current series: what the retry policy counts.
    pub series_attempts: i32,
    pub is_test: bool,
    pub payload: bytes::Bytes,
    pub trace_context: Option<String>,
    /// The publisher's ordering key: the delivery is one of a lane, and
    /// the next of the lane waits until it ends.
    pub ordering_key: Option<String>,
}

impl Claim {
    /// The lane the delivery belongs to, if it was published with an
    /// ordering key.
    pub fn lane(&self) -> Option<Lane> {
        self.ordering_key.as_ref().map(|key| Lane {
            partner_id: self.partner_id,
            notification_type: self.notification_type,
            key: key.clone(),
        })
    }
}

/// The deliveries published with one ordering key to one registration
/// (partner and type): attempted one at a time, in publish order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lane {
    pub partner_id: Uuid,
    pub notification_type: i32,
    pub key: String,
}

/// How a held delivery ends this time it is held: the write its holder makes.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub delivery_id: Uuid,
    /// The claim's hold, under which the outcome is written.
    pub hold: Hold,
    /// `Pending` with `next_attempt_at` to retry (or to release unattempted).
    pub status: DeliveryStatus,
    pub next_attempt_at: DateTime<Utc>,
    /// The attempt made, if one was: counted and logged. `None` releases or
    /// cancels without counting.
    pub attempt: Option<AttemptRecord>,
    pub error: Option<String>,
    /// The delivery's lane, when it has one and this outcome ends it: the
    /// next of the lane is made due once the outcome is written.
    pub ends_lane_turn: Option<Lane>,
}

/// An attempt as the attempt log records it.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub registration_id: Uuid,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub response_status: Option<i32>,
    pub response_excerpt: String,
    /// Why it did not deliver, if it did not (and was no 410).
    pub failure: Option<FailureKind>,
}

impl Outcome {
    /// The delivery held by `hold` back to the queue, unattempted and
    /// uncounted, due at `due`.
    pub fn release(delivery_id: Uuid, hold: Hold, due: DateTime<Utc>) -> Self {
        Self {
            delivery_id,
            hold,
            status: DeliveryStatus::Pending,
            next_attempt_at: due,
            attempt: None,
            ends_lane_turn: None,
            error: None,
        }
    }

    /// `claim` ends unattempted: nobody subscribes to it any more.
    pub fn cancel(claim: &Claim, now: DateTime<Utc>, reason: impl Into<String>) -> Self {
        Self {
            status: DeliveryStatus::Cancelled,
            error: Some(reason.into()),
            ends_lane_turn: claim.lane(),
            ..Self::release(claim.id, claim.hold, now)
        }
    }

    /// What `claim`'s attempt, recorded as `record`, decided (see
    /// [`decide`]), with the result's reason.
    pub fn from_attempt(
        claim: &Claim,
        (status, next_attempt_at): (DeliveryStatus, DateTime<Utc>),
        result: &AttemptResult,
        record: AttemptRecord,
    ) -> Self {
        Self {
            delivery_id: claim.id,
            hold: claim.hold,
            status,
            next_attempt_at,
            attempt: Some(record),
            error: result.reason(),
            ends_lane_turn: claim.lane().filter(|_| status != DeliveryStatus::Pending),
        }
    }

    /// This outcome without the texts it carries (the reason and the
    /// response excerpt): what can still be written when Postgres refuses
    /// them.
    pub fn without_texts(&self) -> Self {
        let mut bare = self.clone();
        bare.error = bare
            .error
            .map(|_| "the reason could not be stored".to_owned());
        if let Some(attempt) = &mut bare.attempt {
            attempt.response_excerpt.clear();
        }
        bare
    }
}

/// The state a delivery goes to after an attempt with `result`, the
/// `series_attempts`-th before it in its series, decided at `now`: its
/// status and when it is next due. `draw` in `[0, 1)` places the retry in
/// the policy's jitter.
pub fn decide(
    result: &AttemptResult,
    series_attempts: i32,
    policy: &RetryPolicy,
    waits: &[Duration],
    now: DateTime<Utc>,
    draw: f64,
) -> (DeliveryStatus, DateTime<Utc>) {
    match result {
        AttemptResult::Delivered { .. } => (DeliveryStatus::Delivered, now),
        AttemptResult::Gone { .. } => (DeliveryStatus::Cancelled, now),
        AttemptResult::Failed { retry_after, .. } => {
            let failed = u32::try_from(series_attempts).unwrap_or_default() + 1;
            match policy.next_on(waits, failed, draw, *retry_after) {
                NextStep::RetryAfter(wait) => (DeliveryStatus::Pending, now + wait),
                NextStep::GiveUp => (DeliveryStatus::Failed, now),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::new(
            vec![Duration::from_secs(5), Duration::from_secs(60)],
            0.0,
            Duration::from_secs(3600),
        )
        .expect("a valid policy")
    }

    #[test]
    fn a_registrations_own_waits_replace_the_schedule() {
        let failed = AttemptResult::no_answer(FailureKind::Timeout, "timeout");
        let waits = [
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(3),
        ];
        let at = |n| decide(&failed, n, &policy(), &waits, now(), 0.0);
        assert_eq!(
            at(0),
            (DeliveryStatus::Pending, now() + Duration::from_secs(1))
        );
        assert_eq!(
            at(2),
            (DeliveryStatus::Pending, now() + Duration::from_secs(3))
        );
        assert_eq!(
            at(3).0,
            DeliveryStatus::Failed,
            "one attempt more than waits"
        );
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("a valid time")
    }

    #[test]
    fn a_failure_retries_by_the_schedule_then_gives_up() {
        let failed = AttemptResult::from_status(503, None);
        let at = |n| decide(&failed, n, &policy(), policy().schedule(), now(), 0.0);
        assert_eq!(
            at(0),
            (DeliveryStatus::Pending, now() + Duration::from_secs(5))
        );
        assert_eq!(
            at(1),
            (DeliveryStatus::Pending, now() + Duration::from_secs(60))
        );
        assert_eq!(at(2), (DeliveryStatus::Failed, now()));
    }

    #[test]
    fn a_success_delivers_and_a_gone_endpoint_cancels_at_once() {
        let p = policy();
        let ok = AttemptResult::from_status(200, None);
        let gone = AttemptResult::from_status(410, None);
        assert_eq!(
            decide(&ok, 1, &p, p.schedule(), now(), 0.5),
            (DeliveryStatus::Delivered, now())
        );
        assert_eq!(
            decide(&gone, 0, &p, p.schedule(), now(), 0.5),
            (DeliveryStatus::Cancelled, now())
        );
    }

    proptest! {
        /// Whatever the result, the series and the draw: a delivery is
        /// never due before the decision, a terminal state is due at
        /// once, and only a failure stays pending.
        #[test]
        fn every_decision_is_due_now_or_later_and_only_failures_retry(
            status in 100u16..600,
            series in -1i32..10,
            draw in 0.0f64..1.0,
            retry_after in proptest::option::of(0u64..100_000),
        ) {
            let result = AttemptResult::from_status(status, retry_after.map(Duration::from_secs));
            let (next, due) = decide(&result, series, &policy(), policy().schedule(), now(), draw);
            prop_assert!(due >= now());
            match next {
                DeliveryStatus::Pending => {
                    let failed = matches!(result, AttemptResult::Failed { .. });
                    prop_assert!(failed, "{:?} retries", result);
                    prop_assert!(due > now());
                }
                _ => prop_assert_eq!(due, now()),
            }
        }
    }
}
