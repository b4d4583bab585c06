//! Each registration's share of this process: a few slots of its own, a
//! small parking space for deliveries waiting for one, its recent pace,
//! and how hard it may be pushed ([`Throttle`]: held after it throttled or
//! kept failing, fewer attempts at once until it recovers).
//!
//! A delivery whose endpoint has no free slot is parked in memory, holding
//! its lease but no global slot; the task that finishes an attempt on that
//! endpoint takes the next parked delivery ([`Endpoints::next_parked`]),
//! so a busy endpoint is kept exactly at its concurrency. Parking is
//! bounded per endpoint and in all; beyond that, and for deliveries parked
//! so long that their lease could run out during the attempt, the delivery
//! goes back to the queue unattempted, for about as long as the parking
//! takes to drain at the endpoint's recent pace ([`Endpoint::back_off`]).
//! Each return costs a claim and a write, so an endpoint that hangs until
//! its timeout sees its surplus come back once in a few timeouts, not
//! every second.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use foldhash::{HashMap, HashMapExt as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::fleet::{Change, Fleet};
use super::throttle::{Health, Shift, Throttle};
use crate::domain::queue::Claim;
use crate::registry::Target;
use crate::storage::endpoint_limits::{Held, Limit};

/// Parked deliveries allowed per endpoint, as a multiple of its slots.
const PARK_PER_SLOT: usize = 4;
/// Parked deliveries allowed in all, as a multiple of the in-flight bound.
pub(super) const PARK_PER_IN_FLIGHT: usize = 4;

/// A registration's slots and the deliveries waiting for one.
#[derive(Debug)]
pub(super) struct Endpoint {
    slots: Arc<Semaphore>,
    /// Deliveries waiting for a slot, with when they were claimed.
    parked: VecDeque<(Claim, Arc<Target>, Instant)>,
    /// How long its attempts take lately (a moving average; zero until
    /// one finishes), and when that was last updated.
    pace: Duration,
    paced_at: Instant,
    throttle: Throttle,
}

/// What an attempt on an endpoint took, and what it said of the endpoint;
/// with the partner and type the endpoint serves, for the other replicas.
#[derive(Debug, Clone, Copy)]
pub(super) struct Answered {
    pub took: Duration,
    pub health: Health,
    pub partner_id: Uuid,
    pub notification_type: i32,
}

/// A delivery ready to attempt: one of its endpoint's slots is held.
#[derive(Debug)]
pub(super) struct Ready {
    pub permit: OwnedSemaphorePermit,
    pub claim: Claim,
    pub claimed_at: Instant,
    pub target: Arc<Target>,
}

/// Where a resolved delivery goes next.
#[derive(Debug)]
pub(super) enum Placement {
    Attempt(Ready),
    Parked,
    /// The endpoint is saturated and its parking full: back to the queue
    /// for this long.
    Refused(Box<Claim>, Duration),
}

/// Parked deliveries that waited too long for their endpoint, and how long
/// to put them off.
pub(super) type Stale = (Vec<Claim>, Duration);

/// The bounds every endpoint shares.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub per_endpoint: usize,
    /// The least a refused delivery is put off.
    pub floor: Duration,
    /// The most a refused delivery is put off (before spreading).
    pub ceiling: Duration,
    /// How long after its claim a delivery may still start an attempt
    /// that cannot outlive its lease.
    pub start_within: Duration,
    /// The longest an endpoint is held for its `Retry-After`.
    pub longest_hold: Duration,
}

/// Every endpoint this process delivers to, under one lock; this
/// replica's place among the others, and the changes of limits it owes
/// them (see `fleet`).
#[derive(Debug)]
pub(super) struct Endpoints {
    map: Mutex<HashMap<Uuid, Endpoint>>,
    limits: Limits,
    pub(super) fleet: Fleet,
    changes: tokio::sync::mpsc::Sender<Change>,
}

impl Endpoint {
    fn new(per_endpoint: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(per_endpoint)),
            parked: VecDeque::new(),
            pace: Duration::ZERO,
            paced_at: Instant::now(),
            throttle: Throttle::new(per_endpoint),
        }
    }

    /// How long to put off a delivery that this endpoint cannot take soon
    /// (its parking is full, or it waited parked too long): about the time
    /// its parked deliveries take to drain at its recent pace. A pace
    /// older than two paces is not trusted (the endpoint was idle, or has
    /// changed): then `floor`. The wait is clamped to `floor..=ceiling`
    /// first and then spread downwards by up to half with `draw` in
    /// `[0, 1)`, so that returns do not come due together even at the
    /// ceiling.
    fn back_off(
        &self,
        per_endpoint: usize,
        floor: Duration,
        ceiling: Duration,
        draw: f64,
    ) -> Duration {
        let recent = !self.pace.is_zero() && self.paced_at.elapsed() <= self.pace * 2;
        let drain = if recent {
            self.pace
                .mul_f64(self.parked.len() as f64 / per_endpoint.max(1) as f64)
        } else {
            Duration::ZERO
        };
        let ceiling = ceiling.max(floor);
        drain
            .clamp(floor, ceiling)
            .mul_f64(1.0 - 0.5 * draw.clamp(0.0, 1.0))
            .max(floor)
    }

    fn record_pace(&mut self, took: Duration) {
        self.pace = if self.pace.is_zero() {
            took
        } else {
            self.pace.mul_f64(0.8) + took.mul_f64(0.2)
        };
        self.paced_at = Instant::now();
    }
}

impl Endpoints {
    pub(super) fn new(limits: Limits, changes: tokio::sync::mpsc::Sender<Change>) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            limits,
            fleet: Fleet::alone(),
            changes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Endpoint>> {
        self.map.lock()
    }

    /// Deliveries parked on every endpoint.
    pub(super) fn parked_total(&self) -> usize {
        self.lock().values().map(|e| e.parked.len()).sum()
    }

    /// A slot on the delivery's endpoint, or a place in its parking.
    pub(super) fn place(
        &self,
        claim: Claim,
        claimed_at: Instant,
        target: Arc<Target>,
    ) -> Placement {
        let per_endpoint = self.limits.per_endpoint;
        let mut endpoints = self.lock();
        let endpoint = endpoints
            .entry(target.registration_id)
            .or_insert_with(|| Endpoint::new(per_endpoint));
        // The clock is read only for an endpoint that is held.
        if let Some(held) = endpoint.throttle.held(Instant::now) {
            let spread = endpoint.throttle.next_hold();
            return Placement::Refused(Box::new(claim), after_hold(held, spread));
        }
        let share = self
            .fleet
            .share(endpoint.throttle.allowance(), target.registration_id);
        if share == 0 {
            // Other replicas take this endpoint's attempts now.
            let spread = endpoint.throttle.next_hold();
            return Placement::Refused(Box::new(claim), after_hold(Duration::ZERO, spread));
        }
        let busy = per_endpoint - endpoint.slots.available_permits();
        let permit = (busy < share)
            .then(|| endpoint.slots.clone().try_acquire_owned().ok())
            .flatten();
        match permit {
            Some(permit) => Placement::Attempt(Ready {
                permit,
                claim,
                claimed_at,
                target,
            }),
            None if endpoint.parked.len() < per_endpoint * PARK_PER_SLOT => {
                endpoint.parked.push_back((claim, target, claimed_at));
                Placement::Parked
            }
            None => Placement::Refused(Box::new(claim), self.back_off(endpoint)),
        }
    }

    /// The next parked delivery for `registration`, keeping `permit`; or, if
    /// none is left, gives the slot back. Both under one lock, so a delivery
    /// is never parked just after its endpoint's last slot holder looked.
    /// Deliveries whose lease could run out during an attempt are returned
    /// as stale, with how long to put them off, and so is everything parked
    /// on an endpoint that is held. `answered` is what the attempt that held
    /// `permit` found, if one was made. Past the endpoint's allowance, the
    /// slot is given back and the parked wait for the next holder.
    pub(super) fn next_parked(
        &self,
        registration: Uuid,
        permit: OwnedSemaphorePermit,
        answered: Option<Answered>,
    ) -> (Option<Ready>, Stale) {
        let mut endpoints = self.lock();
        let mut stale = Vec::new();
        let Some(endpoint) = endpoints.get_mut(&registration) else {
            return (None, (stale, self.limits.floor));
        };
        let now = Instant::now();
        if let Some(answered) = answered {
            self.record(endpoint, registration, &answered, now);
        }
        if let Some(held) = endpoint.throttle.held(|| now) {
            stale.extend(endpoint.parked.drain(..).map(|(claim, _, _)| claim));
            drop(permit);
            let spread = endpoint.throttle.next_hold();
            return (None, (stale, after_hold(held, spread)));
        }
        // Others still running, with this one: over the allowance, this
        // slot is not passed on.
        let others = self.limits.per_endpoint - endpoint.slots.available_permits() - 1;
        let share = self
            .fleet
            .share(endpoint.throttle.allowance(), registration);
        if others >= share {
            drop(permit);
            return (None, (stale, Duration::ZERO));
        }
        let next = loop {
            match endpoint.parked.pop_front() {
                Some((claim, _, claimed_at)) if self.too_late(claimed_at) => stale.push(claim),
                Some((claim, target, claimed_at)) => {
                    break Some(Ready {
                        permit,
                        claim,
                        claimed_at,
                        target,
                    });
                }
                None => {
                    // Still under the lock (see above).
                    drop(permit);
                    break None;
                }
            }
        };
        let wait = if stale.is_empty() {
            Duration::ZERO
        } else {
            self.back_off(endpoint)
        };
        (next, (stale, wait))
    }

    /// Takes an attempt's answer into the endpoint's pace and throttle.
    fn record(
        &self,
        endpoint: &mut Endpoint,
        registration: Uuid,
        answered: &Answered,
        now: Instant,
    ) {
        endpoint.record_pace(answered.took);
        let (slots, longest) = (self.limits.per_endpoint, self.limits.longest_hold);
        if let Some(shift) = endpoint
            .throttle
            .record(answered.health, slots, now, longest)
        {
            self.share_shift(registration, answered, shift);
        }
    }

    /// Counts a hold, and hands the change to the other replicas (see
    /// `fleet`); past the bound of changes waiting, this replica alone
    /// knows it.
    fn share_shift(&self, registration: Uuid, answered: &Answered, shift: Shift) {
        let change = match shift {
            Shift::Held {
                reason,
                hold,
                allowance,
            } => {
                metrics::counter!("callbacks_endpoint_holds_total", "reason" => reason.label())
                    .increment(1);
                Change::Held(
                    Held {
                        registration_id: registration,
                        partner_id: answered.partner_id,
                        notification_type: answered.notification_type,
                        reason: reason.label(),
                        hold,
                        allowance: i32::try_from(allowance).unwrap_or(i32::MAX),
                    },
                    Instant::now(),
                )
            }
            Shift::Eased { allowance } => Change::Eased {
                registration_id: registration,
                allowance: i32::try_from(allowance).unwrap_or(i32::MAX),
            },
        };
        if self.changes.try_send(change).is_err() {
            metrics::counter!("callbacks_endpoint_limit_changes_dropped_total").increment(1);
        }
    }

    /// Takes on the limits every replica wrote (`limits`), and gives back
    /// their whole allowance to the endpoints no longer limited (`gone`).
    pub(super) fn adopt(&self, limits: &[Limit], gone: &[Uuid]) {
        let per_endpoint = self.limits.per_endpoint;
        let now = Instant::now();
        let mut endpoints = self.lock();
        for limit in limits {
            let allowance = usize::try_from(limit.allowance).unwrap_or(1);
            endpoints
                .entry(limit.registration_id)
                .or_insert_with(|| Endpoint::new(per_endpoint))
                .throttle
                .adopt(limit.remaining(), allowance.min(per_endpoint), now);
        }
        for registration in gone {
            if let Some(endpoint) = endpoints.get_mut(registration) {
                endpoint.throttle.restore(per_endpoint);
            }
        }
    }

    /// Whether an attempt started now could outlive the lease claimed at
    /// `claimed_at` (and so overlap another worker's attempt).
    pub(super) fn too_late(&self, claimed_at: Instant) -> bool {
        claimed_at.elapsed() >= self.limits.start_within
    }

    /// Drops the endpoints with every slot free and nothing parked, so
    /// that the map holds the registrations being delivered to, not every
    /// one ever delivered to. Safe under the map's lock: a forgotten
    /// endpoint has no permit out, and the next delivery to it starts a
    /// fresh one.
    pub(super) fn forget_idle(&self) {
        forget_idle(&mut self.lock(), self.limits.per_endpoint);
    }

    fn back_off(&self, endpoint: &Endpoint) -> Duration {
        endpoint.back_off(
            self.limits.per_endpoint,
            self.limits.floor,
            self.limits.ceiling,
            super::jitter_draw(),
        )
    }
}

fn forget_idle(endpoints: &mut HashMap<Uuid, Endpoint>, per_endpoint: usize) {
    endpoints.retain(|_, e| {
        !e.parked.is_empty()
            || e.slots.available_permits() < per_endpoint
            || !e.throttle.at_rest(per_endpoint)
    });
}

/// How long to put a delivery off for an endpoint held for `held` more:
/// at least that, spread over the `next` hold after it, so that the held
/// deliveries neither come due the moment it ends nor meet its probe all
/// at once (each one claimed and released again costs the shared queue).
fn after_hold(held: Duration, next: Duration) -> Duration {
    held + next.mul_f64(super::jitter_draw())
}

#[cfg(test)]
mod tests;
