//! How hard an endpoint is pushed, from how it answers.
//!
//! - **Throttled**: a `429`, `502`, `503` or `504`, or no answer in time,
//!   holds the whole endpoint: for its `Retry-After` when it gives one,
//!   otherwise for a hold that doubles with each throttle (1 s up to a
//!   minute). Its allowance of attempts at once halves.
//! - **Failing**: after [`CIRCUIT_AFTER`] failures in a row without an
//!   answer, or with another `5xx`, the circuit opens: the endpoint is
//!   held as above and then probed with one attempt at a time, instead of
//!   every due delivery spending a retry on it.
//! - **Fine**: any other answer (a `2xx`, but also a `4xx`: the endpoint
//!   is there) doubles the allowance back up to the endpoint's slots, and
//!   resets the hold.
//!
//! Deliveries that meet a held endpoint, or find its allowance used, go
//! back to the queue unattempted: they spend none of their retries.

use std::time::{Duration, Instant};

use crate::domain::{AttemptResult, FailureKind};

/// Failures in a row that open the circuit.
pub(super) const CIRCUIT_AFTER: u32 = 5;
/// The first hold without a `Retry-After`, and the longest.
const FIRST_HOLD: Duration = Duration::from_secs(1);
const LONGEST_HOLD: Duration = Duration::from_secs(60);

/// What one attempt says of its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Health {
    Fine,
    /// Asked to slow down, for this long if it said.
    Throttled(Option<Duration>),
    Failing,
}

impl Health {
    pub(super) fn of(result: &AttemptResult) -> Self {
        match result {
            AttemptResult::Delivered { .. } | AttemptResult::Gone { .. } => Self::Fine,
            AttemptResult::Failed {
                status: Some(429 | 502 | 503 | 504),
                retry_after,
                ..
            } => Self::Throttled(*retry_after),
            AttemptResult::Failed {
                kind: FailureKind::Timeout,
                ..
            } => Self::Throttled(None),
            AttemptResult::Failed {
                status: Some(status),
                ..
            } if *status < 500 => Self::Fine,
            // `refused` is our own refusal (the URL or its address), not
            // the endpoint's state.
            AttemptResult::Failed {
                kind: FailureKind::Refused,
                ..
            } => Self::Fine,
            AttemptResult::Failed { .. } => Self::Failing,
        }
    }
}

/// Why an endpoint was held, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HoldReason {
    Throttled,
    CircuitOpen,
}

/// A change of the endpoint's limit that the other replicas must see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shift {
    /// Held for `hold`, now allowed `allowance` attempts at once.
    Held {
        reason: HoldReason,
        hold: Duration,
        allowance: usize,
    },
    /// Allowed more attempts at once after an answer.
    Eased { allowance: usize },
}

impl HoldReason {
    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Throttled => "throttled",
            Self::CircuitOpen => "circuit_open",
        }
    }
}

/// One endpoint's throttle state.
#[derive(Debug)]
pub(super) struct Throttle {
    /// Attempts allowed at once: all of the endpoint's slots when it is
    /// fine, fewer after it throttled or kept failing.
    allowance: usize,
    /// Nothing is attempted on the endpoint before this.
    held_until: Option<Instant>,
    /// The next hold when the endpoint gives no `Retry-After`.
    next_hold: Duration,
    failures: u32,
}

impl Throttle {
    pub(super) fn new(slots: usize) -> Self {
        Self {
            allowance: slots,
            held_until: None,
            next_hold: FIRST_HOLD,
            failures: 0,
        }
    }

    /// How much longer the endpoint is held at `now`, if it is.
    pub(super) fn held(&mut self, now: impl FnOnce() -> Instant) -> Option<Duration> {
        let until = self.held_until?;
        let now = now();
        if until > now {
            return Some(until - now);
        }
        self.held_until = None;
        None
    }

    /// How long the next hold without a `Retry-After` lasts: the window
    /// over which the deliveries held now are spread, so that the probe
    /// after this hold does not meet all of them again at once.
    pub(super) fn next_hold(&self) -> Duration {
        self.next_hold
    }

    /// Attempts allowed at once, on all replicas together.
    pub(super) fn allowance(&self) -> usize {
        self.allowance
    }

    /// Takes on what the replicas together decided: held for `remaining`
    /// more (if it is longer than this replica's own hold), with
    /// `allowance` attempts at once.
    pub(super) fn adopt(&mut self, remaining: Duration, allowance: usize, now: Instant) {
        if !remaining.is_zero() {
            let until = now + remaining;
            self.held_until = Some(self.held_until.map_or(until, |held| held.max(until)));
        }
        self.allowance = allowance.max(1);
    }

    /// The replicas no longer limit the endpoint: its whole allowance back.
    pub(super) fn restore(&mut self, slots: usize) {
        self.allowance = slots;
    }

    /// Whether it is as a new endpoint's: nothing to remember.
    pub(super) fn at_rest(&self, slots: usize) -> bool {
        self.allowance >= slots && self.held_until.is_none() && self.failures == 0
    }

    /// Takes one attempt's `health` into account at `now`; answers how the
    /// endpoint's limit changed, if it did. `longest` bounds a hold the
    /// endpoint asked for.
    pub(super) fn record(
        &mut self,
        health: Health,
        slots: usize,
        now: Instant,
        longest: Duration,
    ) -> Option<Shift> {
        match health {
            Health::Fine => {
                self.failures = 0;
                self.next_hold = FIRST_HOLD;
                let before = self.allowance;
                self.allowance = (self.allowance * 2).clamp(1, slots);
                (self.allowance != before).then_some(Shift::Eased {
                    allowance: self.allowance,
                })
            }
            Health::Throttled(asked) => {
                self.allowance = (self.allowance / 2).max(1);
                let hold = asked.map_or(self.next_hold, |asked| asked.min(longest));
                self.hold(now, hold);
                Some(self.held_for(HoldReason::Throttled, hold))
            }
            Health::Failing => {
                self.failures += 1;
                if self.failures < CIRCUIT_AFTER {
                    return None;
                }
                self.allowance = 1;
                let hold = self.next_hold;
                self.hold(now, hold);
                Some(self.held_for(HoldReason::CircuitOpen, hold))
            }
        }
    }

    fn held_for(&self, reason: HoldReason, hold: Duration) -> Shift {
        Shift::Held {
            reason,
            hold,
            allowance: self.allowance,
        }
    }

    fn hold(&mut self, now: Instant, hold: Duration) {
        let until = now + hold;
        self.held_until = Some(self.held_until.map_or(until, |held| held.max(until)));
        self.next_hold = (self.next_hold * 2).min(LONGEST_HOLD);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOTS: usize = 8;
    const HOUR: Duration = Duration::from_secs(3600);

    fn failed(status: Option<u16>, kind: FailureKind) -> AttemptResult {
        AttemptResult::Failed {
            status,
            kind,
            reason: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn answers_say_how_the_endpoint_is() {
        let throttled = AttemptResult::from_status(429, Some(Duration::from_secs(7)));
        assert_eq!(
            Health::of(&throttled),
            Health::Throttled(Some(Duration::from_secs(7)))
        );
        for status in [502, 503, 504] {
            let answer = AttemptResult::from_status(status, None);
            assert_eq!(Health::of(&answer), Health::Throttled(None));
        }
        let timeout = failed(None, FailureKind::Timeout);
        assert_eq!(Health::of(&timeout), Health::Throttled(None));
        for failing in [
            AttemptResult::from_status(500, None),
            failed(None, FailureKind::ConnectionRefused),
            failed(None, FailureKind::Dns),
            failed(None, FailureKind::Tls),
        ] {
            assert_eq!(Health::of(&failing), Health::Failing, "{failing:?}");
        }
        for fine in [
            AttemptResult::from_status(204, None),
            AttemptResult::from_status(404, None),
            AttemptResult::from_status(410, None),
            failed(None, FailureKind::Refused),
        ] {
            assert_eq!(Health::of(&fine), Health::Fine, "{fine:?}");
        }
    }

    #[test]
    fn a_throttle_holds_for_retry_after_and_halves_the_allowance() {
        let now = Instant::now();
        let mut throttle = Throttle::new(SLOTS);
        let asked = Some(Duration::from_secs(2));
        let shift = throttle.record(Health::Throttled(asked), SLOTS, now, HOUR);
        assert_eq!(
            shift,
            Some(Shift::Held {
                reason: HoldReason::Throttled,
                hold: Duration::from_secs(2),
                allowance: 4
            })
        );
        assert_eq!(throttle.held(|| now), Some(Duration::from_secs(2)));
        assert_eq!(throttle.allowance(), 4, "half of 8");
        assert_eq!(throttle.held(|| now + Duration::from_secs(2)), None);
        // Recovers gradually: doubling per success, up to the slots.
        let eased = throttle.record(Health::Fine, SLOTS, now, HOUR);
        assert_eq!(eased, Some(Shift::Eased { allowance: 8 }));
        assert!(throttle.at_rest(SLOTS));
        assert_eq!(throttle.record(Health::Fine, SLOTS, now, HOUR), None);
    }

    #[test]
    fn holds_without_retry_after_double_and_an_asked_hold_is_bounded() {
        let now = Instant::now();
        let mut throttle = Throttle::new(SLOTS);
        for expected in [1, 2, 4] {
            throttle.record(Health::Throttled(None), SLOTS, now, HOUR);
            assert_eq!(throttle.held(|| now), Some(Duration::from_secs(expected)));
            throttle.held_until = None;
        }
        let days = Some(Duration::from_secs(86_400 * 3));
        throttle.record(Health::Throttled(days), SLOTS, now, HOUR);
        assert_eq!(throttle.held(|| now), Some(HOUR));
    }

    #[test]
    fn failures_in_a_row_open_the_circuit_to_one_probe_at_a_time() {
        let now = Instant::now();
        let mut throttle = Throttle::new(SLOTS);
        for _ in 1..CIRCUIT_AFTER {
            assert_eq!(throttle.record(Health::Failing, SLOTS, now, HOUR), None);
        }
        assert!(throttle.held(|| now).is_none(), "not yet");
        let opened = throttle.record(Health::Failing, SLOTS, now, HOUR);
        assert!(
            matches!(
                opened,
                Some(Shift::Held {
                    reason: HoldReason::CircuitOpen,
                    allowance: 1,
                    ..
                })
            ),
            "{opened:?}"
        );
        assert!(throttle.held(|| now).is_some());
        assert_eq!(throttle.allowance(), 1, "one probe");
        // A success in between starts the count again.
        let mut other = Throttle::new(SLOTS);
        for _ in 1..CIRCUIT_AFTER {
            other.record(Health::Failing, SLOTS, now, HOUR);
        }
        other.record(Health::Fine, SLOTS, now, HOUR);
        assert_eq!(other.record(Health::Failing, SLOTS, now, HOUR), None);
    }

    #[test]
    fn the_replicas_limit_is_adopted_and_given_back() {
        let now = Instant::now();
        let mut throttle = Throttle::new(SLOTS);
        throttle.adopt(Duration::from_secs(3), 2, now);
        assert_eq!(throttle.held(|| now), Some(Duration::from_secs(3)));
        assert_eq!(throttle.allowance(), 2);
        // A shorter hold from the others does not cut this one's short.
        throttle.adopt(Duration::from_secs(1), 2, now);
        assert_eq!(throttle.held(|| now), Some(Duration::from_secs(3)));
        // Over: no hold, and the allowance stays the others'.
        throttle.adopt(Duration::ZERO, 1, now);
        assert_eq!(throttle.held(|| now + Duration::from_secs(3)), None);
        assert_eq!(throttle.allowance(), 1);
        throttle.restore(SLOTS);
        assert!(throttle.at_rest(SLOTS));
    }
}
