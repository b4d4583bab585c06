//! The [`Worker`]: the handle on this process's delivery loop, its
//! settings, and the hand-off through which a publish gives the loop
//! deliveries it stored already leased here.
//!
//! Hand-off: a publish to this process reserves free slots first
//! ([`Worker::reserve`]), stores that many of its deliveries already
//! leased to us, and after the commit hands them straight to the loop
//! ([`Worker::hand_off`]). They skip the claim and the wake-up, and so
//! reach the partner sooner. Whatever finds no free slot is stored
//! unleased and claimed as usual; a hand-off that never arrives (a crash
//! between commit and hand-off) is claimed when its lease runs out, like
//! any claim of a crashed worker.

use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use foldhash::{HashMap, HashMapExt as _};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use uuid::Uuid;

use super::cursor_watch::CursorWatch;
use super::endpoints::{Endpoints, Limits};
use super::fleet;
use super::http::Deliverer;
use super::task::Meters;
use crate::domain::RetryPolicy;
use crate::domain::queue::{Claim, Hold};
use crate::registry::RegistryClient;
use crate::storage::DbPool;
use crate::storage::clock::DbClock;
use crate::storage::models::Lease;

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
    /// `endpoints`).
    pub defer_for: Duration,
    /// How long a delivery to a paused registration waits before it is
    /// looked at again: the most a resume takes to show.
    pub paused_recheck: Duration,
    /// On shutdown, how long in-flight attempts may run before they are
    /// abandoned and their deliveries released.
    pub shutdown_grace: Duration,
}

/// A slot of this process reserved at publish for a delivery stored already
/// leased to it (see the module docs).
#[derive(Debug)]
pub struct Reserved {
    pub lease: Lease,
    slot: OwnedSemaphorePermit,
    at: Instant,
}

/// A claim on its way to its task, holding one of the global slots.
#[derive(Debug)]
pub(super) struct InFlight {
    pub claim: Claim,
    pub slot: OwnedSemaphorePermit,
    /// When its lease started counting.
    pub claimed_at: Instant,
    /// A moment after it was published (the claim answered, or its
    /// publish reserved the slot): every registry change answered before
    /// then applies to its attempt.
    pub seen_at: Instant,
}

/// Each batch claimed or swept here, with how many of its deliveries have
/// no outcome handed to the completer yet; the completer deletes a batch's
/// `claims` row with its last outcome.
pub(super) type Batches = Arc<Mutex<HashMap<Uuid, u32>>>;

#[derive(Debug)]
pub struct Worker {
    pub(super) pool: DbPool,
    pub(super) registry: Arc<RegistryClient>,
    pub(super) deliverer: Deliverer,
    pub(super) policy: RetryPolicy,
    pub(super) settings: WorkerSettings,
    pub(super) wake: Arc<Notify>,
    /// Attempts in flight (claimed or handed off), at most `max_in_flight`.
    pub(super) slots: Arc<Semaphore>,
    handoffs: mpsc::UnboundedSender<InFlight>,
    /// Taken by the claim loop.
    pub(super) handoffs_rx: Mutex<Option<mpsc::UnboundedReceiver<InFlight>>>,
    pub(super) endpoints: Endpoints,
    /// This replica's changes of endpoint limits; taken by `fleet::sync`.
    pub(super) changes_rx: Mutex<Option<mpsc::Receiver<fleet::Change>>>,
    /// Claimed and not yet completed: released if shutdown abandons them.
    pub(super) in_flight: Mutex<HashMap<Uuid, Hold>>,
    pub(super) batches: Batches,
    /// Where this process's claims left the cursor, and the earliest due
    /// time notified since that lies behind it.
    pub(super) cursor: Arc<CursorWatch>,
    /// Every time this process writes or reports (see `storage::clock`).
    pub(super) clock: DbClock,
    pub(super) meters: Meters,
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
        let (changes, changes_rx) = mpsc::channel(fleet::CHANGES_BOUND);
        let endpoints = Endpoints::new(
            Limits {
                per_endpoint: settings.per_endpoint,
                floor: settings.defer_for,
                ceiling: settings.lease / 2,
                start_within: settings.lease.saturating_sub(deliverer.attempt_budget()),
                longest_hold: policy.max_retry_after(),
            },
            changes,
        );
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
            endpoints,
            changes_rx: Mutex::new(Some(changes_rx)),
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

    /// Attempts `claim`, stored under `reserved`'s lease, as if claimed.
    pub fn hand_off(&self, claim: Claim, reserved: Reserved) {
        let handoff = InFlight {
            claim,
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

    /// The longest a claim or a completion may take before its connection
    /// is given up: half a lease, so that a hung claim is noticed before
    /// what it leased comes due again.
    pub(super) fn statement_timeout(&self) -> Duration {
        self.settings.lease / 2
    }
}
