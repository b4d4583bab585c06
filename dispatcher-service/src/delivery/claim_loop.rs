//! The claim loop: takes due deliveries for free slots and starts a task
//! for each, until shutdown; then finishes or releases what is in flight.
//!
//! Each turn is one of four steps ([`Step`]): wait for a reason to claim
//! (a wake-up, the poll, work notified behind the cursor); wait for a free
//! slot; wait out the registry's backoff; or take a batch, by a claim from
//! the cursor or a sweep behind it (see `storage::queue`). Hand-offs from
//! this process's publishes are started whatever the loop waits for.
//! Claims and sweeps share one connection: a full sweep once per poll
//! interval (the first at start, for a crashed predecessor's batches),
//! a sweep from a notified due time when [`CursorWatch`] says work
//! committed behind the cursor, and claims otherwise.
//!
//! [`CursorWatch`]: super::cursor_watch::CursorWatch

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::completer::{self, Finished};
use super::cursor_watch::LATE_SWEEP_GAP;
use super::endpoints::PARK_PER_IN_FLIGHT;
use super::worker::{InFlight, Worker};
use crate::domain::DispatchError;
use crate::domain::queue::{Claim, Outcome};
use crate::storage::notifications::listen;
use crate::storage::queue::{self, QueueConnection, Role};

/// How often the loop forgets endpoints with nothing in flight or parked.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);

/// What the loop takes work by.
#[derive(Debug, Clone, Copy)]
enum Take {
    Claim,
    /// A sweep behind the cursor from this due time on.
    Sweep(DateTime<Utc>),
}

/// The loop's next step.
#[derive(Debug)]
enum Step {
    /// Nothing says work is due: wait until something does.
    AwaitReason,
    /// Every slot is taken.
    AwaitSlot,
    /// The registry fails: wait this long, then ask it once.
    AwaitRegistry(Duration),
    /// Take a batch for the free slots.
    Take,
}

/// When the loop next claims and sweeps.
#[derive(Debug)]
struct Schedule {
    /// Claim at the next turn. Set when woken, when the poll comes round,
    /// and while batches come back full; never because a hand-off arrived
    /// (a claim per publish would make hand-offs queue behind claims).
    claim_now: bool,
    next_poll: tokio::time::Instant,
    next_full_sweep: Instant,
    /// A sweep that came back full, to go on with from this due time.
    sweep_more: Option<DateTime<Utc>>,
    /// The earliest a sweep for notified work may run.
    late_sweep_at: tokio::time::Instant,
    next_forget: Instant,
}

pub(super) struct ClaimLoop {
    worker: Arc<Worker>,
    tasks: JoinSet<()>,
    handoffs: mpsc::UnboundedReceiver<InFlight>,
    done: mpsc::Sender<Finished>,
    connection: QueueConnection,
    schedule: Schedule,
}

impl Worker {
    /// Claims and delivers until `shutdown`; then claims no more but takes
    /// hand-offs until `stopped` (the publishes still being answered), and
    /// finally finishes or releases what is in flight.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken, stopped: CancellationToken) {
        let (done, finished) = mpsc::channel::<Finished>(4096);
        let completer = tokio::spawn(completer::run(
            self.pool.clone(),
            self.statement_timeout(),
            self.registry.clone(),
            self.batches.clone(),
            finished,
        ));
        let (cursor, wake) = (self.cursor.clone(), self.wake.clone());
        let notified = move |due: Option<DateTime<Utc>>| {
            if let Some(due) = due {
                cursor.notified(due);
            }
            wake.notify_one();
        };
        let listener = tokio::spawn(listen(self.pool.clone(), notified, shutdown.clone()));
        let changes = self
            .changes_rx
            .lock()
            .take()
            .expect("the delivery loop runs once");
        let fleet = tokio::spawn(super::fleet::sync(
            self.clone(),
            changes,
            self.settings.poll_interval,
            stopped.clone(),
        ));
        let mut claims = ClaimLoop::new(self, done);
        claims.claim_until(&shutdown).await;
        claims.take_handoffs_until(&stopped).await;
        claims.stop().await;
        let _ = completer.await;
        let _ = fleet.await;
        listener.abort();
        tracing::info!("delivery loop stopped");
    }
}

impl ClaimLoop {
    fn new(worker: Arc<Worker>, done: mpsc::Sender<Finished>) -> Self {
        let handoffs = worker
            .handoffs_rx
            .lock()
            .take()
            .expect("the delivery loop runs once");
        let connection = QueueConnection::new(
            worker.pool.clone(),
            Role::Claims,
            worker.statement_timeout(),
        );
        let now = tokio::time::Instant::now();
        Self {
            worker,
            tasks: JoinSet::new(),
            handoffs,
            done,
            connection,
            schedule: Schedule {
                claim_now: true,
                next_poll: now,
                next_full_sweep: Instant::now(),
                sweep_more: None,
                late_sweep_at: now,
                next_forget: Instant::now() + FORGET_IDLE_EVERY,
            },
        }
    }

    fn start(&mut self, in_flight: InFlight) {
        self.worker.start(&mut self.tasks, in_flight, &self.done);
    }

    async fn claim_until(&mut self, shutdown: &CancellationToken) {
        while !shutdown.is_cancelled() {
            self.tidy();
            let go_on = match self.next_step() {
                Step::AwaitReason => self.await_reason(shutdown).await,
                Step::AwaitSlot => self.await_slot(shutdown).await,
                Step::AwaitRegistry(wait) => self.await_registry(wait, shutdown).await,
                Step::Take => {
                    self.take_batch().await;
                    true
                }
            };
            if !go_on {
                break;
            }
        }
    }

    /// Reaps finished tasks, forgets idle endpoints now and then, and
    /// starts the hand-offs that arrived.
    fn tidy(&mut self) {
        while self.tasks.try_join_next().is_some() {}
        if self.schedule.next_forget <= Instant::now() {
            self.worker.endpoints.forget_idle();
            self.schedule.next_forget = Instant::now() + FORGET_IDLE_EVERY;
        }
        while let Ok(in_flight) = self.handoffs.try_recv() {
            self.start(in_flight);
        }
    }

    fn next_step(&self) -> Step {
        if !self.schedule.claim_now {
            Step::AwaitReason
        } else if self.worker.slots.available_permits() == 0 {
            Step::AwaitSlot
        } else if let Some(wait) = self.worker.registry.unavailable_for() {
            // While the registry fails, nothing claimed can be resolved:
            // rather than claim and release the backlog at every backoff's
            // end, ask it once before claiming again.
            Step::AwaitRegistry(wait)
        } else {
            Step::Take
        }
    }

    /// Waits for a reason to claim; answers false at shutdown.
    async fn await_reason(&mut self, shutdown: &CancellationToken) -> bool {
        let worker = &self.worker;
        let behind = worker.cursor.has_behind();
        tokio::select! {
            _ = worker.wake.notified() => self.schedule.claim_now = true,
            _ = tokio::time::sleep_until(self.schedule.next_poll) => self.schedule.claim_now = true,
            _ = tokio::time::sleep_until(self.schedule.late_sweep_at), if behind => self.schedule.claim_now = true,
            Some(in_flight) = self.handoffs.recv() => worker.start(&mut self.tasks, in_flight, &self.done),
            _ = shutdown.cancelled() => return false,
        }
        true
    }

    async fn await_slot(&mut self, shutdown: &CancellationToken) -> bool {
        let worker = &self.worker;
        tokio::select! {
            _ = worker.slots.acquire() => {}
            Some(in_flight) = self.handoffs.recv() => worker.start(&mut self.tasks, in_flight, &self.done),
            _ = shutdown.cancelled() => return false,
        }
        true
    }

    async fn await_registry(&mut self, wait: Duration, shutdown: &CancellationToken) -> bool {
        let worker = &self.worker;
        let probe = async {
            tokio::time::sleep(wait).await;
            worker.registry.answers().await
        };
        tokio::select! {
            _ = probe => {}
            Some(in_flight) = self.handoffs.recv() => worker.start(&mut self.tasks, in_flight, &self.done),
            _ = shutdown.cancelled() => return false,
        }
        true
    }

    /// Takes the free slots for a batch, first, so that hand-offs arriving
    /// while it runs (and started meanwhile) cannot take them. A publish
    /// may reserve some meanwhile: the batch is for what was taken.
    fn reserve_slots(&self) -> Option<OwnedSemaphorePermit> {
        let worker = &self.worker;
        let free = worker.slots.available_permits();
        let park_room = (worker.settings.max_in_flight * PARK_PER_IN_FLIGHT)
            .saturating_sub(worker.endpoints.parked_total());
        let limit = (worker.settings.batch_size as usize).min(free.min(park_room.max(1)));
        let mut reserved = worker.slots.clone().try_acquire_owned().ok()?;
        while reserved.num_permits() < limit {
            match worker.slots.clone().try_acquire_owned() {
                Ok(slot) => reserved.merge(slot),
                Err(_) => break,
            }
        }
        Some(reserved)
    }

    /// Which kind of batch to take now.
    async fn choose(&mut self) -> Take {
        let worker = &self.worker;
        if self.schedule.next_full_sweep <= Instant::now() {
            self.schedule.next_full_sweep = Instant::now() + worker.settings.poll_interval;
            if let Err(error) = self
                .connection
                .run(async |conn| worker.clock.read(conn).await)
                .await
            {
                tracing::warn!(error = %error, "cannot read the database's clock; carrying the last reading on");
            }
            Take::Sweep(DateTime::UNIX_EPOCH)
        } else if let Some(from) = self.schedule.sweep_more.take() {
            Take::Sweep(from)
        } else if let Some(from) = (self.schedule.late_sweep_at <= tokio::time::Instant::now())
            .then(|| worker.cursor.take_behind())
            .flatten()
        {
            self.schedule.late_sweep_at = tokio::time::Instant::now() + LATE_SWEEP_GAP;
            Take::Sweep(from)
        } else {
            worker.cursor.claim_starts();
            Take::Claim
        }
    }

    /// Takes one batch and starts a task for each of its deliveries.
    async fn take_batch(&mut self) {
        let Some(reserved) = self.reserve_slots() else {
            return;
        };
        let limit = u32::try_from(reserved.num_permits()).unwrap_or(u32::MAX);
        let take = self.choose().await;
        // The lease runs from before the claim is sent: the database
        // starts it at the claim's (or sweep's) transaction start, and
        // a claim may first wait for another replica's on the cursor.
        let claimed_at = Instant::now();
        let claimed = match self.run_take(take, limit).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(error = %error, "claiming deliveries failed; retrying");
                Vec::new()
            }
        };
        self.after_take(take, &claimed, limit);
        self.start_claimed(claimed, reserved, claimed_at).await;
    }

    /// Runs `take` for up to `limit`, starting hand-offs meanwhile.
    async fn run_take(&mut self, take: Take, limit: u32) -> Result<Vec<Claim>, DispatchError> {
        let worker = &self.worker;
        let lease = worker.settings.lease;
        let batch = self.connection.run(async |conn| match take {
            Take::Claim => queue::claim(conn, limit, lease).await,
            Take::Sweep(from) => queue::sweep(conn, limit, lease, from).await,
        });
        tokio::pin!(batch);
        loop {
            tokio::select! {
                claimed = &mut batch => return claimed,
                Some(in_flight) = self.handoffs.recv() => worker.start(&mut self.tasks, in_flight, &self.done),
            }
        }
    }

    /// What a batch says about the next: a full claim suggests more is
    /// due, a full sweep more behind.
    fn after_take(&mut self, take: Take, claimed: &[Claim], limit: u32) {
        let full = claimed.len() as u32 == limit;
        self.schedule.claim_now = full || matches!(take, Take::Sweep(_));
        if let (true, Take::Sweep(from)) = (full, take) {
            self.schedule.sweep_more = Some(from);
        }
        self.schedule.next_poll = tokio::time::Instant::now() + self.worker.settings.poll_interval;
        if let Take::Claim = take {
            self.worker
                .cursor
                .claim_ended(claimed.iter().filter_map(|c| c.hold.was_due).max());
        }
    }

    /// Starts a task for each claimed delivery, on a slot of `reserved`.
    async fn start_claimed(
        &mut self,
        claimed: Vec<Claim>,
        mut reserved: OwnedSemaphorePermit,
        claimed_at: Instant,
    ) {
        let seen_at = Instant::now();
        if let Some(first) = claimed.first() {
            self.worker
                .batches
                .lock()
                .insert(first.hold.token, claimed.len() as u32);
        }
        for claim in claimed {
            let Some(slot) = reserved.split(1) else {
                // Cannot happen (a claim returns at most the slots taken
                // for it), but never drop a claim.
                let outcome = Outcome::release(claim.id, claim.hold, self.worker.clock.now());
                let _ = self.done.send(Finished::unreported(outcome)).await;
                continue;
            };
            self.start(InFlight {
                claim,
                slot,
                claimed_at,
                seen_at,
            });
        }
    }

    /// Publishes still being answered may hand deliveries over.
    async fn take_handoffs_until(&mut self, stopped: &CancellationToken) {
        loop {
            tokio::select! {
                Some(in_flight) = self.handoffs.recv() => self.start(in_flight),
                _ = stopped.cancelled() => break,
            }
        }
    }

    /// Lets what is in flight finish within the grace, then releases
    /// whatever was abandoned, and closes the completer's channel.
    async fn stop(mut self) {
        // No more reservations; what was handed off meanwhile is attempted
        // within the grace like the rest.
        self.worker.slots.close();
        while let Ok(in_flight) = self.handoffs.try_recv() {
            self.start(in_flight);
        }
        tracing::info!(in_flight = self.tasks.len(), "delivery loop stopping");
        let tasks = &mut self.tasks;
        let finished = tokio::time::timeout(self.worker.settings.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
        // Whatever is still marked in flight was abandoned, and so is a
        // hand-off that arrived too late to start: make them due now.
        let mut abandoned: Vec<_> = self.worker.in_flight.lock().drain().collect();
        while let Ok(late) = self.handoffs.try_recv() {
            abandoned.push((late.claim.id, late.claim.hold));
        }
        for (delivery_id, hold) in abandoned {
            let outcome = Outcome::release(delivery_id, hold, self.worker.clock.now());
            let _ = self.done.send(Finished::unreported(outcome)).await;
        }
    }
}
