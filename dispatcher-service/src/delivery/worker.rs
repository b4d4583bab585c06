//! The delivery loop of one dispatcher process.
//!
//! ```text
//!  claim (≤ free in-flight slots) ──▶ one task per delivery ──▶ completer
//!      ▲   from the cursor, or      ▲    resolve (cached)          batches outcomes
//!      │   sweep behind it          │    endpoint slot or defer    into one fenced write,
//!  NOTIFY / poll                    │    HTTP attempt              then reports state changes
//!                        hand-off from this process's publishes
//! ```
//!
//! Claims and sweeps alternate on one connection: a sweep once per poll
//! interval, and when a notification says work committed behind the
//! cursor (see `storage::queue`, and [`listen`]); claims otherwise.
//!
//! Hand-off: a publish to this process reserves free slots first, stores
//! that many of its deliveries already leased to us, and after the commit
//! hands them straight to the loop. They skip the claim and the wake-up,
//! and so reach the partner sooner. Whatever
//! finds no free slot is stored unleased and claimed as usual; a hand-off
//! that never arrives (a crash between commit and hand-off) is claimed when
//! its lease runs out, like any claim of a crashed worker.
//!
//! Isolation: a global semaphore bounds the attempts in flight, and each
//! registration has a few slots of its own. A delivery whose endpoint has no
//! free slot is parked in memory, holding its lease but no global slot; the
//! task that finishes an attempt on that endpoint takes the next parked
//! delivery, so a busy endpoint is kept exactly at its concurrency. Parking
//! is bounded per endpoint and in all; beyond that, and for deliveries
//! parked longer than half a lease, the delivery goes back to the queue
//! unattempted. An endpoint that hangs until its timeout therefore occupies
//! its own slots and its small parking space, never the others'. What its
//! parking refuses, or holds too long, goes back for about as long as the
//! parking takes to drain at the endpoint's recent pace (up to half a
//! lease for one that hangs until the timeout), not for a fixed second:
//! each return costs a claim and a write, and at a second apiece ten
//! hanging endpoints kept the queue churning enough to add about a
//! millisecond to the healthy endpoints' p99.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashMapExt as _};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::completer::{self, Done, Report};
use super::http::{AttemptOf, Deliverer};
use crate::domain::{AttemptResult, DeliveryStatus, DispatchError, NextStep, RetryPolicy};
use crate::registry::{RegistryClient, Resolution, Target};
use crate::storage::clock::DbClock;
use crate::storage::models::Lease;
use crate::storage::queue::{
    self, AttemptRecord, Claimed, Completion, Hold, QueueConnection, Role,
};
use crate::storage::{DbPool, WAKE_CHANNEL, notified_due};

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Most deliveries claimed by one claim.
    pub batch_size: u32,
    /// How long a claim is exclusive; must outlast an attempt.
    pub lease: Duration,
    /// How often to look for due work when nothing wakes us, and to sweep
    /// behind the cursor (see `storage::queue`).
    pub poll_interval: Duration,
    pub max_in_flight: usize,
    pub per_endpoint: usize,
    /// How soon a delivery deferred for an unreachable registry comes due
    /// again; the least a delivery refused by a busy endpoint waits (see
    /// `Endpoint::back_off`).
    pub defer_for: Duration,
    /// On shutdown, how long in-flight attempts may run before they are
    /// abandoned and their deliveries released.
    pub shutdown_grace: Duration,
}

/// A registration's slots and the deliveries waiting for one.
#[derive(Debug)]
struct Endpoint {
    slots: Arc<Semaphore>,
    /// Deliveries waiting for a slot, with when they were claimed.
    parked: VecDeque<(Claimed, Arc<Target>, Instant)>,
    /// How long its attempts take lately (a moving average; zero until
    /// one finishes), and when that was last updated.
    pace: Duration,
    paced_at: Instant,
}

impl Endpoint {
    fn new(per_endpoint: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(per_endpoint)),
            parked: VecDeque::new(),
            pace: Duration::ZERO,
            paced_at: Instant::now(),
        }
    }

    /// How long to put off a delivery that this endpoint cannot take soon
    /// (its parking is full, or it waited parked too long): about the time
    /// its parked deliveries take to drain at its recent pace, so that an
    /// endpoint that hangs until the timeout sees its surplus come back
    /// once in a few timeouts rather than every `floor` (each return is a
    /// claim and a write that healthy endpoints' deliveries queue behind).
    /// A pace older than two paces is not trusted (the endpoint was idle,
    /// or has changed): then `floor`. The wait is clamped to
    /// `floor..=ceiling` first and then spread downwards by up to half
    /// with `draw` in `[0, 1)`, so that returns do not come due together
    /// even at the ceiling.
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

/// A slot of this process reserved at publish for a delivery stored already
/// leased to it (see the module docs).
#[derive(Debug)]
pub struct Reserved {
    pub lease: Lease,
    slot: OwnedSemaphorePermit,
    at: Instant,
}

/// A delivery leased at publish, on its way to the loop.
#[derive(Debug)]
struct HandOff {
    claimed: Claimed,
    slot: OwnedSemaphorePermit,
    /// When its lease started counting.
    claimed_at: Instant,
    /// A moment after it was published (the claim answered, or its
    /// publish reserved the slot): every registry change answered before
    /// then applies to its attempt.
    seen_at: Instant,
}

/// A delivery ready to attempt: one of its endpoint's slots is held.
#[derive(Debug)]
struct Work {
    permit: OwnedSemaphorePermit,
    claimed: Claimed,
    claimed_at: Instant,
    target: Arc<Target>,
}

/// Where a resolved delivery goes next.
#[derive(Debug)]
enum Placement {
    Attempt(Work),
    Parked,
    /// The endpoint is saturated and its parking full: back to the queue
    /// for this long.
    Refused(Box<Claimed>, Duration),
}

/// Parked deliveries that waited too long for their endpoint, and how long
/// to put them off.
type Stale = (Vec<Claimed>, Duration);

/// How often the loop forgets endpoints with nothing in flight or parked.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Drops the endpoints with every slot free and nothing parked, so that
/// the map holds the registrations being delivered to, not every one ever
/// delivered to. Safe under the map's lock: a forgotten endpoint has no
/// permit out, and the next delivery to it starts a fresh one.
fn forget_idle(endpoints: &mut HashMap<Uuid, Endpoint>, per_endpoint: usize) {
    endpoints.retain(|_, e| !e.parked.is_empty() || e.slots.available_permits() < per_endpoint);
}

/// Parked deliveries allowed per endpoint, as a multiple of its slots.
const PARK_PER_SLOT: usize = 4;
/// Parked deliveries allowed in all, as a multiple of the in-flight bound.
const PARK_PER_IN_FLIGHT: usize = 4;

#[derive(Debug)]
pub struct Worker {
    pool: DbPool,
    registry: Arc<RegistryClient>,
    deliverer: Deliverer,
    policy: RetryPolicy,
    settings: WorkerSettings,
    wake: Arc<Notify>,
    /// Attempts in flight (claimed or handed off), at most `max_in_flight`.
    slots: Arc<Semaphore>,
    handoffs: mpsc::UnboundedSender<HandOff>,
    /// Taken by `run`.
    handoffs_rx: Mutex<Option<mpsc::UnboundedReceiver<HandOff>>>,
    endpoints: Mutex<HashMap<Uuid, Endpoint>>,
    /// Claimed and not yet completed: released if shutdown abandons them.
    in_flight: Mutex<HashMap<Uuid, Hold>>,
    /// Each batch claimed or swept here, with how many of its deliveries
    /// have no outcome handed to the completer yet; the completer deletes
    /// a batch's `claims` row with its last outcome.
    batches: Batches,
    /// Where this process's claims left the cursor, and the earliest due
    /// time notified since that lies behind it (see [`listen`]).
    cursor: Arc<CursorWatch>,
    /// Every time this process writes or reports (see `storage::clock`).
    clock: DbClock,
    meters: Meters,
}

pub(super) type Batches = Arc<Mutex<HashMap<Uuid, u32>>>;

/// What the claim loop and the listener share about the cursor, in
/// microseconds since the epoch (see [`listen`]).
#[derive(Debug)]
struct CursorWatch {
    /// The latest due time this process's claims took.
    passed: AtomicI64,
    /// Whether a claim is running.
    claiming: AtomicBool,
    /// The earliest due time notified while a claim ran and not at or
    /// before `passed`: the claim may have seen that work, or not.
    during: AtomicI64,
    /// The earliest due time notified at or before `passed` (work that
    /// committed behind the cursor), or notified during a claim that then
    /// passed it: for a sweep. `i64::MAX` when none.
    behind: AtomicI64,
}

/// The least time between two sweeps for work notified behind the cursor.
/// Under a steady stream of publishes nearly every claim runs while one
/// commits, and cannot tell whether it saw it; a sweep after each would
/// double the queue's statements. So such work waits up to this long.
const LATE_SWEEP_GAP: Duration = Duration::from_millis(10);

impl CursorWatch {
    fn new() -> Self {
        Self {
            passed: AtomicI64::new(i64::MIN),
            claiming: AtomicBool::new(false),
            during: AtomicI64::new(i64::MAX),
            behind: AtomicI64::new(i64::MAX),
        }
    }

    fn claim_starts(&self) {
        self.claiming.store(true, Ordering::SeqCst);
    }

    /// A claim that took deliveries due up to `latest` has ended.
    fn claim_ended(&self, latest: Option<DateTime<Utc>>) {
        if let Some(latest) = latest {
            self.passed
                .fetch_max(latest.timestamp_micros(), Ordering::SeqCst);
        }
        self.claiming.store(false, Ordering::SeqCst);
        let during = self.during.swap(i64::MAX, Ordering::SeqCst);
        if during <= self.passed.load(Ordering::SeqCst) {
            self.behind.fetch_min(during, Ordering::SeqCst);
        }
    }

    /// Notes work notified as due at `due`.
    fn notified(&self, due: DateTime<Utc>) {
        let due = due.timestamp_micros();
        if due <= self.passed.load(Ordering::SeqCst) {
            self.behind.fetch_min(due, Ordering::SeqCst);
        } else if self.claiming.load(Ordering::SeqCst) {
            self.during.fetch_min(due, Ordering::SeqCst);
        }
    }

    fn has_behind(&self) -> bool {
        self.behind.load(Ordering::SeqCst) != i64::MAX
    }

    /// The earliest due time notified behind the cursor since last asked.
    fn take_behind(&self) -> Option<DateTime<Utc>> {
        match self.behind.swap(i64::MAX, Ordering::SeqCst) {
            i64::MAX => None,
            micros => DateTime::from_timestamp_micros(micros),
        }
    }
}

/// What the loop takes work by.
#[derive(Debug, Clone, Copy)]
enum Take {
    Claim,
    /// A sweep behind the cursor from this due time on.
    Sweep(DateTime<Utc>),
}

/// The attempt metrics, registered once: the `counter!`-style macros look
/// their series up (and copy its labels) on every call.
#[derive(Debug)]
struct Meters {
    in_flight: metrics::Gauge,
    delivered: metrics::Counter,
    gone: metrics::Counter,
    failed: metrics::Counter,
    duration: metrics::Histogram,
}

impl Meters {
    fn new() -> Self {
        let attempts = |outcome: &'static str| metrics::counter!("callbacks_delivery_attempts_total", "outcome" => outcome);
        Self {
            in_flight: metrics::gauge!("callbacks_deliveries_in_flight"),
            delivered: attempts("delivered"),
            gone: attempts("gone"),
            failed: attempts("failed"),
            duration: metrics::histogram!("callbacks_delivery_attempt_duration_seconds"),
        }
    }
}

/// A uniform draw in `[0, 1)` for retry jitter.
fn jitter_draw() -> f64 {
    let bits = Uuid::new_v4().as_u64_pair().0 >> 11;
    bits as f64 / (1u64 << 53) as f64
}

/// `claimed` back to the queue, unattempted, due at `due`.
fn release(claimed: &Claimed, due: DateTime<Utc>, error: Option<String>) -> Completion {
    Completion {
        delivery_id: claimed.id,
        hold: claimed.hold,
        status: DeliveryStatus::Pending,
        next_attempt_at: due,
        attempt: None,
        error,
    }
}

impl Worker {
    pub fn new(
        pool: DbPool,
        registry: Arc<RegistryClient>,
        deliverer: Deliverer,
        policy: RetryPolicy,
        settings: WorkerSettings,
    ) -> Arc<Self> {
        let (handoffs, handoffs_rx) = mpsc::unbounded_channel();
        Arc::new(Self {
            pool,
            registry,
            deliverer,
            policy,
            slots: Arc::new(Semaphore::new(settings.max_in_flight)),
            settings,
            wake: Arc::new(Notify::new()),
            handoffs,
            handoffs_rx: Mutex::new(Some(handoffs_rx)),
            endpoints: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            batches: Arc::new(Mutex::new(HashMap::new())),
            cursor: Arc::new(CursorWatch::new()),
            clock: DbClock::new(),
            meters: Meters::new(),
        })
    }

    /// Wakes the claim loop (new work was published here).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Up to `n` free slots, each with a fresh lease, for deliveries this
    /// process will attempt without claiming them. Only slots beyond half
    /// of them are given out, so that hand-offs never crowd out claimed
    /// work (retries, redeliveries, what found no slot at publish, other
    /// replicas' expired leases). None once stopping.
    pub fn reserve(&self, n: usize) -> Vec<Reserved> {
        let spare = self
            .slots
            .available_permits()
            .saturating_sub(self.settings.max_in_flight / 2);
        let mut reserved = Vec::new();
        let at = Instant::now();
        while reserved.len() < n.min(spare) {
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                break;
            };
            reserved.push(Reserved {
                lease: Lease {
                    token: Uuid::new_v4(),
                    length: self.settings.lease,
                },
                slot,
                at,
            });
        }
        if !reserved.is_empty() {
            // Its attempts need the registry's changes up to now (the
            // publish is under way, after any change its publisher heard
            // of): ask while the publish commits, not after.
            self.registry.learn_changes_since(at);
        }
        reserved
    }

    /// Attempts `claimed`, stored under `reserved`'s lease, as if claimed.
    pub fn hand_off(&self, claimed: Claimed, reserved: Reserved) {
        let handoff = HandOff {
            claimed,
            slot: reserved.slot,
            claimed_at: reserved.at,
            // Reserved while its publish was under way: after any change
            // the publisher heard of.
            seen_at: reserved.at,
        };
        if self.handoffs.send(handoff).is_err() {
            // The loop has stopped: the lease runs out and a claim takes it.
            tracing::debug!("delivery loop stopped; a handed-off delivery waits for its lease");
        }
    }

    fn parked_total(&self) -> usize {
        let endpoints = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        endpoints.values().map(|e| e.parked.len()).sum()
    }

    /// A slot on the delivery's endpoint, or a place in its parking.
    fn place(&self, claimed: Claimed, claimed_at: Instant, target: Arc<Target>) -> Placement {
        let mut endpoints = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        let endpoint = endpoints
            .entry(target.registration_id)
            .or_insert_with(|| Endpoint::new(self.settings.per_endpoint));
        match endpoint.slots.clone().try_acquire_owned() {
            Ok(permit) => Placement::Attempt(Work {
                permit,
                claimed,
                claimed_at,
                target,
            }),
            Err(_) if endpoint.parked.len() < self.settings.per_endpoint * PARK_PER_SLOT => {
                endpoint.parked.push_back((claimed, target, claimed_at));
                Placement::Parked
            }
            Err(_) => Placement::Refused(Box::new(claimed), self.back_off(endpoint)),
        }
    }

    /// The next parked delivery for `registration`, keeping `permit`; or, if
    /// none is left, gives the slot back. Both under one lock, so a delivery
    /// is never parked just after its endpoint's last slot holder looked.
    /// Deliveries whose lease could run out during an attempt are returned
    /// as stale, with how long to put them off. `took` is how long the
    /// attempt that held `permit` took, if one was made.
    fn next_parked(
        &self,
        registration: Uuid,
        permit: OwnedSemaphorePermit,
        took: Option<Duration>,
    ) -> (Option<Work>, Stale) {
        let mut endpoints = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        let mut stale = Vec::new();
        let Some(endpoint) = endpoints.get_mut(&registration) else {
            return (None, (stale, self.settings.defer_for));
        };
        if let Some(took) = took {
            endpoint.record_pace(took);
        }
        let next = loop {
            match endpoint.parked.pop_front() {
                Some((claimed, _, claimed_at)) if self.too_late(claimed_at) => stale.push(claimed),
                Some((claimed, target, claimed_at)) => {
                    break Some(Work {
                        permit,
                        claimed,
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

    fn back_off(&self, endpoint: &Endpoint) -> Duration {
        endpoint.back_off(
            self.settings.per_endpoint,
            self.settings.defer_for,
            self.settings.lease / 2,
            jitter_draw(),
        )
    }

    /// Whether an attempt started now could outlive the lease claimed at
    /// `claimed_at` (and so overlap another worker's attempt).
    fn too_late(&self, claimed_at: Instant) -> bool {
        claimed_at.elapsed() + self.deliverer.attempt_budget() >= self.settings.lease
    }

    /// Claims and delivers until `shutdown`; then claims no more but takes
    /// hand-offs until `stopped` (the publishes still being answered), and
    /// finally finishes or releases what is in flight.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken, stopped: CancellationToken) {
        let (done_tx, done_rx) = mpsc::channel::<Done>(4096);
        let completer = tokio::spawn(completer::run(
            self.pool.clone(),
            self.statement_timeout(),
            self.registry.clone(),
            self.batches.clone(),
            done_rx,
        ));
        let listener = tokio::spawn(listen(
            self.pool.clone(),
            self.wake.clone(),
            self.cursor.clone(),
            shutdown.clone(),
        ));
        let slots = self.slots.clone();
        let mut handoffs = self
            .handoffs_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .expect("the delivery loop runs once");
        let mut tasks = JoinSet::new();
        let mut connection =
            QueueConnection::new(self.pool.clone(), Role::Claims, self.statement_timeout());
        // Everything behind the cursor is swept as often as the queue is
        // polled, first at start (a crashed predecessor's batches).
        let mut next_full_sweep = Instant::now();
        // A sweep that came back full, to go on with.
        let mut sweep_more: Option<DateTime<Utc>> = None;
        let mut late_sweep_at = tokio::time::Instant::now();
        // Claim when woken, when the poll comes round, and again while
        // claims come back full; never just because a hand-off arrived
        // (that would run a claim per publish, and hand-offs would queue
        // behind it).
        let mut claim_now = true;
        let mut next_poll = tokio::time::Instant::now();
        let mut next_sweep = Instant::now() + SWEEP_EVERY;

        while !shutdown.is_cancelled() {
            while tasks.try_join_next().is_some() {}
            if next_sweep <= Instant::now() {
                let mut endpoints = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
                forget_idle(&mut endpoints, self.settings.per_endpoint);
                next_sweep = Instant::now() + SWEEP_EVERY;
            }
            while let Ok(handoff) = handoffs.try_recv() {
                self.start(&mut tasks, handoff, &done_tx);
            }
            if !claim_now {
                tokio::select! {
                    _ = self.wake.notified() => claim_now = true,
                    _ = tokio::time::sleep_until(next_poll) => claim_now = true,
                    _ = tokio::time::sleep_until(late_sweep_at), if self.cursor.has_behind() => claim_now = true,
                    Some(handoff) = handoffs.recv() => self.start(&mut tasks, handoff, &done_tx),
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
            let free = slots.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = slots.acquire() => {}
                    Some(handoff) = handoffs.recv() => self.start(&mut tasks, handoff, &done_tx),
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
            // While the registry fails, nothing claimed can be resolved:
            // wait out its backoff, then ask it once (`answers`) before
            // claiming again, rather than claim and release the backlog
            // at every backoff's end.
            if let Some(wait) = self.registry.unavailable_for() {
                let probe = async {
                    tokio::time::sleep(wait).await;
                    self.registry.answers().await
                };
                tokio::select! {
                    _ = probe => {}
                    Some(handoff) = handoffs.recv() => self.start(&mut tasks, handoff, &done_tx),
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
            let park_room = (self.settings.max_in_flight * PARK_PER_IN_FLIGHT)
                .saturating_sub(self.parked_total());
            let limit = self
                .settings
                .batch_size
                .min(u32::try_from(free.min(park_room.max(1))).unwrap_or(u32::MAX));
            // The claim's slots are taken first, so that hand-offs arriving
            // while it runs (and are started meanwhile) cannot take them. A
            // publish may have reserved some since `free` was read: claim
            // for what was taken.
            let Ok(mut reserved) = slots.clone().try_acquire_owned() else {
                continue;
            };
            while reserved.num_permits() < limit as usize {
                match slots.clone().try_acquire_owned() {
                    Ok(slot) => reserved.merge(slot),
                    Err(_) => break,
                }
            }
            let limit = u32::try_from(reserved.num_permits()).unwrap_or(limit);
            let take = if next_full_sweep <= Instant::now() {
                next_full_sweep = Instant::now() + self.settings.poll_interval;
                if let Err(error) = connection
                    .run(async |conn| self.clock.read(conn).await)
                    .await
                {
                    tracing::warn!(error = %error, "cannot read the database's clock; carrying the last reading on");
                }
                Take::Sweep(DateTime::UNIX_EPOCH)
            } else if let Some(from) = sweep_more.take() {
                Take::Sweep(from)
            } else if let Some(from) = (late_sweep_at <= tokio::time::Instant::now())
                .then(|| self.cursor.take_behind())
                .flatten()
            {
                late_sweep_at = tokio::time::Instant::now() + LATE_SWEEP_GAP;
                Take::Sweep(from)
            } else {
                self.cursor.claim_starts();
                Take::Claim
            };
            // The lease runs from before the claim is sent: the database
            // starts it at the claim's (or sweep's) transaction start, and
            // a claim may first wait for another replica's on the cursor.
            let claimed_at = Instant::now();
            let claim = self.take(&mut connection, take, limit);
            tokio::pin!(claim);
            let claimed = loop {
                tokio::select! {
                    claimed = &mut claim => break claimed,
                    Some(handoff) = handoffs.recv() => self.start(&mut tasks, handoff, &done_tx),
                }
            };
            let claimed = match claimed {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(error = %error, "claiming deliveries failed; retrying");
                    Vec::new()
                }
            };
            // A full claim suggests more is due; a full sweep, more behind.
            let full = (claimed.len() as u32) == limit;
            claim_now = full || matches!(take, Take::Sweep(_));
            if let (true, Take::Sweep(from)) = (full, take) {
                sweep_more = Some(from);
            }
            next_poll = tokio::time::Instant::now() + self.settings.poll_interval;
            if let Take::Claim = take {
                self.cursor
                    .claim_ended(claimed.iter().filter_map(|c| c.hold.was_due).max());
            }
            let seen_at = Instant::now();
            if let Some(first) = claimed.first() {
                self.batches
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(first.hold.token, claimed.len() as u32);
            }
            for delivery in claimed {
                let Some(slot) = reserved.split(1) else {
                    // Cannot happen (a claim returns at most the slots taken
                    // for it), but never drop a claim.
                    let _ = done_tx
                        .send(Done {
                            completion: release(&delivery, self.clock.now(), None),
                            report: None,
                        })
                        .await;
                    continue;
                };
                let handoff = HandOff {
                    claimed: delivery,
                    slot,
                    claimed_at,
                    seen_at,
                };
                self.start(&mut tasks, handoff, &done_tx);
            }
        }
        // Publishes still being answered may hand deliveries over.
        loop {
            tokio::select! {
                Some(handoff) = handoffs.recv() => self.start(&mut tasks, handoff, &done_tx),
                _ = stopped.cancelled() => break,
            }
        }
        // No more reservations; what was handed off meanwhile is attempted
        // within the grace like the rest.
        slots.close();
        while let Ok(handoff) = handoffs.try_recv() {
            self.start(&mut tasks, handoff, &done_tx);
        }

        tracing::info!(in_flight = tasks.len(), "delivery loop stopping");
        let finished = tokio::time::timeout(self.settings.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        // Whatever is still marked in flight was abandoned, and so is a
        // hand-off that arrived too late to start: make them due now.
        let mut abandoned: Vec<(Uuid, Hold)> = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        while let Ok(late) = handoffs.try_recv() {
            abandoned.push((late.claimed.id, late.claimed.hold));
        }
        for (delivery_id, hold) in abandoned {
            let completion = Completion {
                delivery_id,
                hold,
                status: DeliveryStatus::Pending,
                next_attempt_at: self.clock.now(),
                attempt: None,
                error: None,
            };
            let _ = done_tx
                .send(Done {
                    completion,
                    report: None,
                })
                .await;
        }
        drop(done_tx);
        let _ = completer.await;
        listener.abort();
        tracing::info!("delivery loop stopped");
    }

    /// Starts the task that attempts one claimed or handed-off delivery.
    fn start(
        self: &Arc<Self>,
        tasks: &mut JoinSet<()>,
        handoff: HandOff,
        done: &mpsc::Sender<Done>,
    ) {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(handoff.claimed.id, handoff.claimed.hold);
        // Boxed: the future (the whole attempt, hyper's included) is large,
        // and unboxed it was copied on its way into the task (about 2 % of
        // the dispatcher's CPU went on those copies in a profile).
        tasks.spawn(Box::pin(self.clone().deliver(handoff, done.clone())));
    }

    async fn take(
        &self,
        connection: &mut QueueConnection,
        take: Take,
        limit: u32,
    ) -> Result<Vec<Claimed>, DispatchError> {
        let lease = self.settings.lease;
        connection
            .run(async |conn| match take {
                Take::Claim => queue::claim(conn, limit, lease).await,
                Take::Sweep(from) => queue::sweep(conn, limit, lease, from).await,
            })
            .await
    }

    /// When `claimed` became due, as a moment here no earlier than that
    /// (known for a claim from the cursor). A registry change answered
    /// before then applies to its attempt: an event published after the
    /// change became due after it (its due time is its publish
    /// transaction's start), as did a retry or a redelivery scheduled
    /// after it. So a change-log call that started after this moment
    /// serves the delivery; a backlog is served by the last one, and a
    /// new call is needed only for what became due since.
    fn became_due(&self, claimed: &Claimed) -> Option<Instant> {
        self.clock.no_earlier_than(claimed.hold.was_due?)
    }

    /// The longest a claim or a completion may take before its connection
    /// is given up: half a lease, so that a hung claim is noticed before
    /// what it leased comes due again.
    fn statement_timeout(&self) -> Duration {
        self.settings.lease / 2
    }

    async fn deliver(self: Arc<Self>, handoff: HandOff, done: mpsc::Sender<Done>) {
        // Holding the global slot until the end.
        let HandOff {
            claimed,
            slot: _slot,
            claimed_at,
            seen_at,
        } = handoff;
        let since = self
            .became_due(&claimed)
            .map_or(seen_at, |due| due.min(seen_at));
        let target = match self
            .registry
            .resolve(claimed.partner_id, claimed.notification_type, since)
            .await
        {
            Ok(Resolution::Active(target)) => target,
            Ok(Resolution::NoSubscriber) => {
                let completion = Completion {
                    delivery_id: claimed.id,
                    hold: claimed.hold,
                    status: DeliveryStatus::Cancelled,
                    next_attempt_at: self.clock.now(),
                    attempt: None,
                    error: Some("no active registration".into()),
                };
                self.finish(
                    &done,
                    Done {
                        completion,
                        report: None,
                    },
                )
                .await;
                return;
            }
            Err(error) => {
                // Logged once per failed registry call (`registry`), not
                // once per delivery it fails.
                tracing::debug!(delivery.id = %claimed.id, error = %error, "cannot resolve the callback; deferring");
                metrics::counter!("callbacks_deliveries_deferred_total", "reason" => "registry_unavailable").increment(1);
                // Spread, so that a backlog deferred together does not
                // come due together.
                let wait = service_kit::freshness::jittered(self.settings.defer_for * 2);
                self.hand_back(&done, &claimed, wait).await;
                return;
            }
        };
        let mut next = match self.place(claimed, claimed_at, target) {
            Placement::Attempt(work) => Some(work),
            Placement::Parked => None,
            Placement::Refused(claimed, wait) => {
                // Its endpoint is saturated and its parking full: back to the
                // queue, unattempted.
                self.hand_back(&done, &claimed, wait).await;
                return;
            }
        };
        // Holding one of the endpoint's slots (and our global slot), attempt
        // this delivery, then whatever was parked behind it.
        while let Some(Work {
            permit,
            claimed,
            claimed_at,
            target,
        }) = next
        {
            let mut took = None;
            if self.too_late(claimed_at) {
                self.hand_back(&done, &claimed, Duration::ZERO).await;
            } else {
                let outcome = self.attempt(&claimed, target.clone()).await;
                // The attempt's own measure (milliseconds are plenty for a
                // pace compared with a floor of a second).
                took = outcome.completion.attempt.as_ref().map(|a| {
                    Duration::from_millis(u64::try_from(a.duration_ms).unwrap_or_default())
                });
                self.finish(&done, outcome).await;
            }
            let (following, (stale, wait)) = self.next_parked(target.registration_id, permit, took);
            for claimed in stale {
                self.hand_back(&done, &claimed, wait).await;
            }
            next = following;
        }
    }

    /// Hands `claimed` back to the queue, unattempted, due after `after`.
    async fn hand_back(&self, done: &mpsc::Sender<Done>, claimed: &Claimed, after: Duration) {
        let completion = release(claimed, self.clock.now() + after, None);
        self.finish(
            done,
            Done {
                completion,
                report: None,
            },
        )
        .await;
    }

    /// Hands a finished delivery to the completer, and only then forgets it
    /// as in flight: a task aborted at shutdown while it waits to send
    /// leaves the delivery for the loop to release.
    async fn finish(&self, done: &mpsc::Sender<Done>, outcome: Done) {
        let (id, hold) = (outcome.completion.delivery_id, outcome.completion.hold);
        if done.send(outcome).await.is_err() {
            tracing::error!(delivery.id = %id, "completer gone; the lease will expire and the delivery be retried");
            return;
        }
        // Only this claim's entry: a later claim of the same delivery
        // (after this one's lease ran out) keeps its own.
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if in_flight.get(&id) == Some(&hold) {
            in_flight.remove(&id);
        }
    }

    async fn attempt(&self, claimed: &Claimed, target: Arc<Target>) -> Done {
        let body = claimed.payload.clone();
        self.meters.in_flight.increment(1.0);
        let of = AttemptOf {
            delivery_id: claimed.id,
            partner_id: claimed.partner_id,
            notification_type: claimed.notification_type,
            attempt_number: claimed.attempt_count + 1,
            trace_context: claimed.trace_context.as_deref(),
            started_at: self.clock.now(),
        };
        let outcome = self.deliverer.attempt(&target, of, &body).await;
        self.meters.in_flight.decrement(1.0);
        match &outcome.result {
            AttemptResult::Delivered { .. } => &self.meters.delivered,
            AttemptResult::Gone { .. } => &self.meters.gone,
            AttemptResult::Failed { .. } => &self.meters.failed,
        }
        .increment(1);
        self.meters.duration.record(outcome.duration.as_secs_f64());
        let now = self.clock.now();
        let (status, next_attempt_at) = match &outcome.result {
            AttemptResult::Delivered { .. } => (DeliveryStatus::Delivered, now),
            AttemptResult::Gone { .. } => (DeliveryStatus::Cancelled, now),
            AttemptResult::Failed { retry_after, .. } => {
                let failed = u32::try_from(claimed.series_attempts).unwrap_or_default() + 1;
                match self.policy.next(failed, jitter_draw(), *retry_after) {
                    NextStep::RetryAfter(wait) => (DeliveryStatus::Pending, now + wait),
                    NextStep::GiveUp => (DeliveryStatus::Failed, now),
                }
            }
        };
        // A line per attempt at `debug`, and at `info` for those that did
        // not deliver. At `info`, one for each success took a third more of
        // the dispatcher's instructions than the whole delivery did
        // otherwise (docs/benchmarks.md, seventh round), and repeated what
        // the attempt log, the metrics and the traces already hold.
        macro_rules! attempt_line {
            ($level:expr) => {
                tracing::event!(
                    $level,
                    delivery.id = %claimed.id,
                    delivery.attempt = claimed.attempt_count + 1,
                    partner.id = %claimed.partner_id,
                    notification.type = claimed.notification_type,
                    http.response.status_code = outcome.result.status(),
                    outcome = status.as_str(),
                    error = outcome.result.reason(),
                    trace_id = %outcome.trace_id,
                    "delivery attempt"
                )
            };
        }
        if status == DeliveryStatus::Delivered {
            attempt_line!(tracing::Level::DEBUG);
        } else {
            attempt_line!(tracing::Level::INFO);
        }
        Done {
            completion: Completion {
                delivery_id: claimed.id,
                hold: claimed.hold,
                status,
                next_attempt_at,
                error: outcome.result.reason(),
                attempt: Some(AttemptRecord {
                    registration_id: target.registration_id,
                    started_at: outcome.started_at,
                    duration_ms: i32::try_from(outcome.duration.as_millis()).unwrap_or(i32::MAX),
                    response_status: outcome.result.status().map(i32::from),
                    response_excerpt: outcome.excerpt.clone(),
                }),
            },
            report: Some(Report {
                at: outcome.started_at,
                target,
                result: outcome.result,
                trace_context: claimed.trace_context.clone(),
            }),
        }
    }
}

/// `LISTEN`s for new work and wakes the claim loop; reconnects when the
/// connection drops. Polling in the loop covers any gap.
///
/// A notification's due time is compared with where this process's claims
/// have taken the cursor as it arrives ([`CursorWatch`]). At or before it,
/// the work committed behind the cursor, and the loop sweeps from there.
/// After it, the next claim takes the work, unless it arrived while a
/// claim ran: that claim may or may not have seen the commit, and if it
/// passed the due time, the loop sweeps from there too (at most once per
/// [`LATE_SWEEP_GAP`]). Work whose notification is lost, or whose due time
/// another replica's claims passed, waits for the full sweep that each
/// process makes once per poll interval.
async fn listen(
    pool: DbPool,
    wake: Arc<Notify>,
    cursor: Arc<CursorWatch>,
    shutdown: CancellationToken,
) {
    use diesel_async::RunQueryDsl;
    use futures_util::StreamExt;
    while !shutdown.is_cancelled() {
        let connection = async {
            let mut conn = pool.dedicated_connection().await?;
            diesel::sql_query(format!("LISTEN {WAKE_CHANNEL}"))
                .execute(&mut conn)
                .await?;
            Ok::<_, anyhow::Error>(conn)
        }
        .await;
        match connection {
            Ok(mut conn) => {
                let mut notifications = std::pin::pin!(conn.notifications_stream());
                loop {
                    tokio::select! {
                        next = notifications.next() => match next {
                            Some(Ok(notification)) => {
                                if let Some(due) = notified_due(&notification.payload) {
                                    cursor.notified(due);
                                }
                                wake.notify_one();
                            }
                            _ => break,
                        },
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, "cannot LISTEN for new deliveries; polling meanwhile")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOOR: Duration = Duration::from_secs(1);
    const CEILING: Duration = Duration::from_secs(30);

    /// An endpoint with 8 slots, `parked` deliveries waiting, and attempts
    /// that lately took `pace` (none yet if zero).
    fn endpoint(pace: Duration, parked: usize) -> Endpoint {
        let target = Arc::new(Target::new(
            Uuid::nil(),
            String::new(),
            None,
            None,
            Vec::new(),
        ));
        let claimed = Claimed {
            id: Uuid::nil(),
            hold: Hold::handed_off(Uuid::nil()),
            event_id: Uuid::nil(),
            partner_id: Uuid::nil(),
            notification_type: 5,
            attempt_count: 0,
            series_attempts: 0,
            is_test: false,
            payload: bytes::Bytes::new(),
            trace_context: None,
        };
        let mut endpoint = Endpoint::new(8);
        endpoint.parked = (0..parked)
            .map(|_| (claimed.clone(), target.clone(), Instant::now()))
            .collect();
        if !pace.is_zero() {
            endpoint.record_pace(pace);
        }
        endpoint
    }

    #[test]
    fn an_endpoint_that_hangs_puts_its_surplus_off_for_its_parking_drain_time() {
        // Hangs until a 5 s timeout, 8 slots, 32 parked: 4 rounds of 5 s,
        // spread downwards by up to half.
        let hanging = endpoint(Duration::from_secs(5), 32);
        assert_eq!(
            hanging.back_off(8, FLOOR, CEILING, 0.0),
            Duration::from_secs(20)
        );
        assert_eq!(
            hanging.back_off(8, FLOOR, CEILING, 0.5),
            Duration::from_secs(15)
        );
        // Half as many parked: half as long.
        let fewer = endpoint(Duration::from_secs(5), 16);
        assert_eq!(
            fewer.back_off(8, FLOOR, CEILING, 0.0),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn the_ceiling_still_spreads_the_returns() {
        // A 15 s timeout drains in 60 s: capped at 30 s, then spread.
        let slow = endpoint(Duration::from_secs(15), 32);
        let waits: Vec<Duration> = [0.0, 0.3, 0.6, 0.9]
            .into_iter()
            .map(|draw| slow.back_off(8, FLOOR, CEILING, draw))
            .collect();
        assert_eq!(waits[0], CEILING);
        assert!(waits.windows(2).all(|w| w[1] < w[0]), "{waits:?}");
        assert!(waits.iter().all(|w| *w >= CEILING / 2), "{waits:?}");
    }

    #[test]
    fn a_fast_an_unknown_or_a_stale_pace_waits_the_floor() {
        let fast = endpoint(Duration::from_millis(20), 32);
        assert_eq!(fast.back_off(8, FLOOR, CEILING, 0.5), FLOOR);
        let unknown = endpoint(Duration::ZERO, 32);
        assert_eq!(unknown.back_off(8, FLOOR, CEILING, 0.5), FLOOR);
        // Hung an hour ago, quiet since: its pace says nothing now.
        let mut quiet = endpoint(Duration::from_secs(5), 32);
        quiet.paced_at = Instant::now()
            .checked_sub(Duration::from_secs(3600))
            .expect("the clock is more than an hour past its origin");
        assert_eq!(quiet.back_off(8, FLOOR, CEILING, 0.0), FLOOR);
        // A ceiling below the floor gives the floor, and does not panic.
        let hanging = endpoint(Duration::from_secs(5), 32);
        assert_eq!(hanging.back_off(8, FLOOR, FLOOR / 2, 0.0), FLOOR);
    }

    #[test]
    fn idle_endpoints_are_forgotten_busy_ones_kept() {
        let mut endpoints = HashMap::new();
        let idle = Uuid::from_u128(1);
        let attempting = Uuid::from_u128(2);
        let parking = Uuid::from_u128(3);
        endpoints.insert(idle, endpoint(Duration::from_secs(5), 0));
        endpoints.insert(attempting, endpoint(Duration::ZERO, 0));
        endpoints.insert(parking, endpoint(Duration::ZERO, 1));
        let permit = endpoints[&attempting]
            .slots
            .clone()
            .try_acquire_owned()
            .expect("a free slot");
        forget_idle(&mut endpoints, 8);
        assert!(!endpoints.contains_key(&idle));
        assert!(endpoints.contains_key(&attempting));
        assert!(endpoints.contains_key(&parking));
        drop(permit);
        if let Some(e) = endpoints.get_mut(&parking) {
            e.parked.clear();
        }
        forget_idle(&mut endpoints, 8);
        assert!(endpoints.is_empty());
    }

    #[test]
    fn the_pace_follows_recent_attempts() {
        let mut endpoint = endpoint(Duration::ZERO, 0);
        endpoint.record_pace(Duration::from_secs(5));
        assert_eq!(endpoint.pace, Duration::from_secs(5));
        for _ in 0..30 {
            endpoint.record_pace(Duration::from_millis(10));
        }
        assert!(
            endpoint.pace < Duration::from_millis(20),
            "{:?}",
            endpoint.pace
        );
    }

    fn at(micros: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(1_800_000_000_000_000 + micros).unwrap()
    }

    #[test]
    fn work_notified_behind_the_cursor_is_swept_for() {
        let watch = CursorWatch::new();
        watch.claim_starts();
        watch.claim_ended(Some(at(100)));
        // Ahead of where the claims went: the next claim takes it.
        watch.notified(at(101));
        assert_eq!(watch.take_behind(), None);
        // At or behind it: committed behind the cursor.
        watch.notified(at(90));
        watch.notified(at(100));
        assert_eq!(watch.take_behind(), Some(at(90)));
        assert_eq!(watch.take_behind(), None, "asked once");
    }

    #[test]
    fn work_notified_during_a_claim_is_swept_for_if_the_claim_passed_it() {
        let watch = CursorWatch::new();
        watch.claim_starts();
        watch.notified(at(50));
        // The claim ends short of it: the next claim takes it.
        watch.claim_ended(Some(at(40)));
        assert!(!watch.has_behind());
        watch.claim_starts();
        watch.notified(at(60));
        // This claim passed it, and may not have seen it.
        watch.claim_ended(Some(at(70)));
        assert_eq!(watch.take_behind(), Some(at(60)));
        // A claim that took nothing moves nothing.
        watch.claim_starts();
        watch.notified(at(80));
        watch.claim_ended(None);
        assert_eq!(watch.take_behind(), None);
    }
}
