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
use crate::domain::{AttemptResult, DeliveryStatus};
use crate::registry::{RegistryClient, Target};
use crate::storage::DbPool;
use crate::storage::queue::{self, Completion, QueueConnection, Role};

/// One finished task: the write to make, and what to tell the registry once
/// the write has landed.
#[derive(Debug)]
pub(super) struct Done {
    pub completion: Completion,
    pub report: Option<Report>,
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

/// Writes finished attempts in batches until `done` closes.
pub(super) async fn run(
    pool: DbPool,
    timeout: Duration,
    registry: Arc<RegistryClient>,
    batches: Batches,
    mut done: mpsc::Receiver<Done>,
) {
    // Registered once, like the attempt metrics.
    let finished = [
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
        DeliveryStatus::Cancelled,
    ]
    .map(|status| {
        let counter =
            metrics::counter!("callbacks_deliveries_finished_total", "status" => status.as_str());
        (status, counter)
    });
    // Outcomes this process could not write: fenced off because another
    // holder took the delivery over, or given up on with the database
    // unreachable (then attempted again after the lease).
    let not_written = |reason: &'static str| metrics::counter!("callbacks_outcomes_not_written_total", "reason" => reason);
    let lease_taken_over = not_written("lease_taken_over");
    let unreachable = not_written("database_unreachable");
    let mut connection = QueueConnection::new(pool, Role::Completions, timeout);
    // Kept across batches: allocated once, not per batch.
    let mut batch = Vec::with_capacity(256);
    let mut completions: Vec<Completion> = Vec::with_capacity(256);
    let mut reports: Vec<Option<Report>> = Vec::with_capacity(256);
    let mut finished_batches: Vec<Uuid> = Vec::new();
    while done.recv_many(&mut batch, 256).await > 0 {
        completions.clear();
        reports.clear();
        finished_batches.clear();
        {
            let mut batches = batches.lock().unwrap_or_else(|p| p.into_inner());
            for d in batch.drain(..) {
                let hold = d.completion.hold;
                if let Some(left) = batches.get_mut(&hold.token).filter(|_| hold.batch) {
                    *left = left.saturating_sub(1);
                    if *left == 0 {
                        batches.remove(&hold.token);
                        finished_batches.push(hold.token);
                    }
                }
                completions.push(d.completion);
                reports.push(d.report);
            }
        }
        let written = write(&mut connection, &completions, &finished_batches).await;
        let lost_lease = completions.len() - written.unwritten - written.applied.len();
        if lost_lease > 0 {
            tracing::warn!(
                count = lost_lease,
                "outcomes not written: their leases had been taken over"
            );
            lease_taken_over.increment(lost_lease as u64);
        }
        if written.unwritten > 0 {
            unreachable.increment(written.unwritten as u64);
        }
        for (completion, report) in completions.iter().zip(reports.drain(..)) {
            if !written
                .applied
                .contains(&(completion.delivery_id, completion.hold.token))
            {
                continue;
            }
            if let Some((_, counter)) = finished.iter().find(|(s, _)| *s == completion.status) {
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

/// Writes `completions` and deletes the `claims` rows of the `finished`
/// batches: in one statement, or, if that fails, one outcome at a time.
async fn write(
    connection: &mut QueueConnection,
    completions: &[Completion],
    finished: &[Uuid],
) -> Written {
    let error = match connection
        .run(async |conn| queue::complete(conn, completions, finished).await)
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
    tracing::warn!(error = %error, count = completions.len(), "writing a batch of outcomes failed; writing them one at a time");
    let mut written = Written::default();
    let mut left = completions.to_vec();
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
    left: Vec<Completion>,
    applied: &mut HashSet<(Uuid, Uuid)>,
) -> Vec<Completion> {
    let mut outcomes = left.into_iter();
    while let Some(completion) = outcomes.next() {
        let one = std::slice::from_ref(&completion);
        if let Ok(done) = connection
            .run(async |conn| queue::complete(conn, one, &[]).await)
            .await
        {
            applied.extend(done);
            continue;
        }
        let bare = [completion.without_texts()];
        match connection
            .run(async |conn| queue::complete(conn, &bare, &[]).await)
            .await
        {
            Ok(done) => {
                tracing::warn!(delivery.id = %completion.delivery_id, "outcome written without its reason and response excerpt, which the database refused");
                applied.extend(done);
            }
            Err(_) => return std::iter::once(completion).chain(outcomes).collect(),
        }
    }
    Vec::new()
}
