//! The completer: writes finished deliveries' outcomes in batches, one
//! fenced statement each (`storage::queue::complete`), and only then
//! reports to the registry the outcomes whose write landed (a worker
//! fenced off reports nothing).
//!
//! One outcome that Postgres refuses must not cost the others theirs, nor
//! make its own delivery loop forever: when a batch's statement fails, its
//! outcomes are written one by one, and one still refused is written
//! without its texts (reason and response excerpt). Only when even that
//! fails (the database is unreachable) does the rest wait and retry; what
//! is never written is attempted again after its lease.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use foldhash::HashSet;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::worker::Batches;
use crate::domain::queue::{Hold, Outcome};
use crate::domain::{AttemptResult, DeliveryStatus};
use crate::registry::{RegistryClient, Target};
use crate::storage::DbPool;
use crate::storage::queue::{self, QueueConnection, Role};

/// A delivery done with for now: the write to make, and what to
/// tell the registry once the write has landed.
#[derive(Debug)]
pub(super) struct Finished {
    pub outcome: Outcome,
    pub report: Option<Report>,
}

impl Finished {
    /// An outcome the registry hears nothing of (no attempt was made).
    pub(super) fn unreported(outcome: Outcome) -> Self {
        Self {
            outcome,
            report: None,
        }
    }
}

/// What to tell the registry once an attempt's outcome is written.
#[derive(Debug)]
pub(super) struct Report {
    /// When the attempt started: outcomes are ordered by it.
    pub at: chrono::DateTime<Utc>,
    pub target: Arc<Target>,
    pub result: AttemptResult,
    pub trace_context: Option<String>,
}

/// How many times outcomes that could not be written are tried again, a
/// little longer apart each time (about 11 s in all).
const ROUNDS: u32 = 10;

/// The completer's counters, registered once like the attempt metrics.
struct Counters {
    finished: [(DeliveryStatus, metrics::Counter); 3],
    /// Outcomes this process could not write: fenced off because another
    /// holder took the delivery over, or given up on with the database
    /// unreachable (then attempted again after the lease).
    lease_taken_over: metrics::Counter,
    unreachable: metrics::Counter,
}

impl Counters {
    fn new() -> Self {
        let finished = [
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
            DeliveryStatus::Cancelled,
        ]
        .map(|status| {
            let counter = metrics::counter!("callbacks_deliveries_finished_total", "status" => status.as_str());
            (status, counter)
        });
        let not_written = |reason: &'static str| metrics::counter!("callbacks_outcomes_not_written_total", "reason" => reason);
        Self {
            finished,
            lease_taken_over: not_written("lease_taken_over"),
            unreachable: not_written("database_unreachable"),
        }
    }
}

/// Writes finished deliveries' outcomes in batches until `done` closes.
pub(super) async fn run(
    pool: DbPool,
    timeout: Duration,
    registry: Arc<RegistryClient>,
    batches: Batches,
    mut done: mpsc::Receiver<Finished>,
) {
    let counters = Counters::new();
    let lanes_pool = pool.clone();
    let mut connection = QueueConnection::new(pool, Role::Completions, timeout);
    // Kept across batches: allocated once, not per batch.
    let mut batch = Vec::with_capacity(256);
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(256);
    let mut reports: Vec<Option<Report>> = Vec::with_capacity(256);
    let mut finished_batches: Vec<Uuid> = Vec::new();
    while done.recv_many(&mut batch, 256).await > 0 {
        outcomes.clear();
        reports.clear();
        finished_batches.clear();
        {
            let mut batches = batches.lock();
            for f in batch.drain(..) {
                if let Some(token) = last_of_batch(&mut batches, f.outcome.hold) {
                    finished_batches.push(token);
                }
                outcomes.push(f.outcome);
                reports.push(f.report);
            }
        }
        let written = write(&mut connection, &outcomes, &finished_batches).await;
        let lost_lease = outcomes.len() - written.unwritten - written.applied.len();
        if lost_lease > 0 {
            tracing::warn!(
                count = lost_lease,
                "outcomes not written: their leases had been taken over"
            );
            counters.lease_taken_over.increment(lost_lease as u64);
        }
        if written.unwritten > 0 {
            counters.unreachable.increment(written.unwritten as u64);
        }
        let mut turns_ended = Vec::new();
        for (outcome, report) in outcomes.iter().zip(reports.drain(..)) {
            if written
                .applied
                .contains(&(outcome.delivery_id, outcome.hold.token))
            {
                turns_ended.extend(outcome.ends_lane_turn.clone());
                announce(&counters, &registry, outcome, report);
            }
        }
        give_turns(&lanes_pool, &turns_ended).await;
    }
}

/// Makes the next delivery of each lane whose turn ended due. One that
/// fails here is given its turn by the housekeeping's look for stalled
/// lanes (`service::housekeeping::repair_lanes`).
async fn give_turns(pool: &DbPool, lanes: &[crate::domain::queue::Lane]) {
    if lanes.is_empty() {
        return;
    }
    let given = async {
        let mut conn = pool.get().await?;
        crate::storage::ordering::promote(&mut conn, lanes).await
    };
    if let Err(error) = given.await {
        tracing::warn!(error = %error, "cannot give ordered lanes their next turn; the housekeeping will");
    }
}

/// Counts an outcome of `hold`'s batch off; answers the batch's token if
/// it was the last one.
fn last_of_batch(batches: &mut foldhash::HashMap<Uuid, u32>, hold: Hold) -> Option<Uuid> {
    let left = batches.get_mut(&hold.token).filter(|_| hold.batch)?;
    *left = left.saturating_sub(1);
    if *left > 0 {
        return None;
    }
    batches.remove(&hold.token);
    Some(hold.token)
}

/// Counts a written outcome, and reports its attempt to the registry.
fn announce(
    counters: &Counters,
    registry: &RegistryClient,
    outcome: &Outcome,
    report: Option<Report>,
) {
    if let Some((_, counter)) = counters.finished.iter().find(|(s, _)| *s == outcome.status) {
        counter.increment(1);
    }
    if let Some(report) = report {
        registry.report(
            &report.target,
            &report.result,
            report.at,
            report.trace_context,
        );
    }
}

/// What a write of a batch did.
#[derive(Debug, Default)]
struct Written {
    /// The (delivery, token) pairs whose hold was still theirs: written.
    applied: HashSet<(Uuid, Uuid)>,
    /// How many outcomes could not be written at all.
    unwritten: usize,
}

/// Writes `outcomes` and deletes the `claims` rows of the `finished`
/// batches: in one statement, or, if that fails, one outcome at a time.
async fn write(
    connection: &mut QueueConnection,
    outcomes: &[Outcome],
    finished: &[Uuid],
) -> Written {
    let error = match connection
        .run(async |conn| queue::complete(conn, outcomes, finished).await)
        .await
    {
        Ok(applied) => {
            return Written {
                applied: applied.into_iter().collect(),
                unwritten: 0,
            };
        }
        Err(error) => error,
    };
    tracing::warn!(error = %error, count = outcomes.len(), "writing a batch of outcomes failed; writing them one at a time");
    let mut written = Written::default();
    let mut left = outcomes.to_vec();
    for round in 1..=ROUNDS {
        left = write_each(connection, left, &mut written.applied).await;
        if left.is_empty() {
            break;
        }
        tracing::error!(
            count = left.len(),
            round,
            "the database refuses outcomes; retrying"
        );
        tokio::time::sleep(Duration::from_millis(200) * round).await;
    }
    written.unwritten = left.len();
    if !left.is_empty() {
        // Their leases will run out and the deliveries be attempted again:
        // late, perhaps twice, never lost.
        tracing::error!(count = left.len(), "gave up writing delivery outcomes");
    }
    for round in 1..=ROUNDS {
        let deleted = connection
            .run(async |conn| queue::complete(conn, &[], finished).await)
            .await;
        if deleted.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200) * round).await;
    }
    written
}

/// Writes each of `left` on its own, and one refused again without its
/// texts; answers what could not be written. A write refused even without
/// its texts means the database itself fails: the rest waits, and is
/// tried again after a pause.
async fn write_each(
    connection: &mut QueueConnection,
    left: Vec<Outcome>,
    applied: &mut HashSet<(Uuid, Uuid)>,
) -> Vec<Outcome> {
    let mut rest = left.into_iter();
    while let Some(outcome) = rest.next() {
        let one = std::slice::from_ref(&outcome);
        if let Ok(done) = connection
            .run(async |conn| queue::complete(conn, one, &[]).await)
            .await
        {
            applied.extend(done);
            continue;
        }
        let bare = [outcome.without_texts()];
        match connection
            .run(async |conn| queue::complete(conn, &bare, &[]).await)
            .await
        {
            Ok(done) => {
                tracing::warn!(delivery.id = %outcome.delivery_id, "outcome written without its reason and response excerpt, which the database refused");
                applied.extend(done);
            }
            Err(_) => return std::iter::once(outcome).chain(rest).collect(),
        }
    }
    Vec::new()
}
