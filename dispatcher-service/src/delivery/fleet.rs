//! This replica among the others: per-endpoint limits that hold across
//! dispatcher replicas.
//!
//! - **Shares.** Each replica writes a heartbeat and reads the replicas
//!   alive ([`storage::replicas`]). Of an endpoint's allowance of attempts
//!   at once (its slots, fewer while it is throttled), a replica takes an
//!   equal share, the remainder going to the replicas the registration's
//!   id picks ([`Fleet::share`]): the shares add up to the allowance, so N
//!   replicas together never exceed it, and an endpoint probed one attempt
//!   at a time is probed by one replica.
//! - **Holds.** A hold or a reduced allowance one replica decides (see
//!   `throttle`) is written to `endpoint_limits`, and every replica adopts
//!   the table's state each interval ([`sync`]): a `Retry-After` holds the
//!   endpoint on every replica, timed by the database's clock. A row goes
//!   when the endpoint is back to its full allowance, or [`FORGET_AFTER`]
//!   after its last change.
//!
//! Until a change is written and read, a replica goes on with its own
//! view: a limit reaches the others within about one interval.
//!
//! [`storage::replicas`]: crate::storage::replicas

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use foldhash::{HashSet, HashSetExt as _};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::worker::Worker;
use crate::domain::DispatchError;
use crate::storage::endpoint_limits::{self, Held, Limit};
use crate::storage::replicas;

/// How long an endpoint's row outlives its last hold or change.
pub(super) const FORGET_AFTER: Duration = Duration::from_secs(120);
/// The least time a replica counts as alive after its heartbeat.
const ALIVE_AT_LEAST: Duration = Duration::from_secs(5);
/// Changes waiting to be written; beyond this, new ones are dropped (the
/// replica still applies them itself) and counted.
pub(super) const CHANGES_BOUND: usize = 4096;

/// A change of one endpoint's limit decided here, to be written.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Change {
    /// Held as of the moment given: what is written is what is left then.
    Held(Held, std::time::Instant),
    Eased {
        registration_id: Uuid,
        allowance: i32,
    },
}

/// How many replicas are alive and where this one stands among them.
#[derive(Debug)]
pub(super) struct Fleet(AtomicU64);

impl Fleet {
    /// Alone until the first heartbeat is read back.
    pub(super) fn alone() -> Self {
        Self(AtomicU64::new(pack(1, 0)))
    }

    fn set(&self, count: usize, rank: usize) {
        self.0.store(pack(count, rank), Ordering::Relaxed);
    }

    /// This replica's part of `allowance` attempts at once to
    /// `registration`: `allowance / n`, plus one for `allowance % n` of
    /// the replicas, a window of ranks that starts where the
    /// registration's id says.
    pub(super) fn share(&self, allowance: usize, registration: Uuid) -> usize {
        let packed = self.0.load(Ordering::Relaxed);
        let (count, rank) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
        let count = count.max(1);
        let start = (registration.as_u64_pair().1 % count as u64) as usize;
        let place = (rank + count - start) % count;
        allowance / count + usize::from(place < allowance % count)
    }
}

fn pack(count: usize, rank: usize) -> u64 {
    let clamp = |n: usize| u64::try_from(n).unwrap_or(u64::MAX).min(0xffff_ffff);
    (clamp(count) << 32) | clamp(rank)
}

/// Writes this replica's changes, its heartbeat, and adopts every
/// replica's limits, each `every`, until `stop`; then leaves the list.
pub(super) async fn sync(
    worker: Arc<Worker>,
    mut changes: mpsc::Receiver<Change>,
    every: Duration,
    stop: CancellationToken,
) {
    let me = Uuid::now_v7();
    let mut known = HashSet::new();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending = Vec::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        while let Ok(change) = changes.try_recv() {
            pending.push(change);
        }
        if let Err(error) = round(&worker, me, every, &mut pending, &mut known).await {
            tracing::warn!(error = %error, "cannot share endpoint limits with the other replicas");
        }
    }
    if let Ok(mut conn) = worker.pool.get().await {
        let _ = replicas::leave(&mut conn, me).await;
    }
}

/// One interval's work; `pending` keeps what could not be written.
async fn round(
    worker: &Worker,
    me: Uuid,
    every: Duration,
    pending: &mut Vec<Change>,
    known: &mut HashSet<Uuid>,
) -> Result<(), DispatchError> {
    let mut conn = worker.pool.get().await?;
    let full = i32::try_from(worker.settings.per_endpoint).unwrap_or(i32::MAX);
    for change in pending.iter() {
        match change {
            Change::Held(held, at) => {
                let left = Held {
                    hold: held.hold.saturating_sub(at.elapsed()),
                    ..held.clone()
                };
                endpoint_limits::hold(&mut conn, &left).await?;
            }
            Change::Eased {
                registration_id,
                allowance,
            } => endpoint_limits::ease(&mut conn, *registration_id, *allowance, full).await?,
        }
    }
    pending.clear();
    // The heartbeat before the reads: a replica seen after a change was
    // written has read it.
    replicas::heartbeat(&mut conn, me).await?;
    let alive = replicas::alive(&mut conn, (every * 5).max(ALIVE_AT_LEAST)).await?;
    let rank = alive.iter().position(|id| *id == me).unwrap_or(0);
    worker.endpoints.fleet.set(alive.len().max(1), rank);
    metrics::gauge!("callbacks_dispatcher_replicas").set(alive.len() as f64);
    let limits = endpoint_limits::read(&mut conn, FORGET_AFTER).await?;
    drop(conn);
    let gone = replace_known(known, &limits);
    worker.endpoints.adopt(&limits, &gone);
    record_gauges(&limits);
    Ok(())
}

/// Replaces `known` with the endpoints in `limits`; answers those that
/// left it.
fn replace_known(known: &mut HashSet<Uuid>, limits: &[Limit]) -> Vec<Uuid> {
    let now: HashSet<Uuid> = limits.iter().map(|l| l.registration_id).collect();
    let gone = known.difference(&now).copied().collect();
    *known = now;
    gone
}

fn record_gauges(limits: &[Limit]) {
    for reason in ["throttled", "circuit_open"] {
        let held = limits.iter().filter(|l| l.reason == reason).count();
        metrics::gauge!("callbacks_endpoints_limited", "reason" => reason).set(held as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(allowance: usize, count: usize, registration: Uuid) -> Vec<usize> {
        (0..count)
            .map(|rank| {
                let fleet = Fleet::alone();
                fleet.set(count, rank);
                fleet.share(allowance, registration)
            })
            .collect()
    }

    #[test]
    fn the_shares_add_up_to_the_allowance() {
        for n in 0..50u128 {
            let registration = Uuid::from_u128(n * 0x9e37_79b9_7f4a_7c15);
            for count in 1..6 {
                for allowance in 1..10 {
                    let shares = shares(allowance, count, registration);
                    assert_eq!(shares.iter().sum::<usize>(), allowance, "{shares:?}");
                    let (min, max) = (shares.iter().min(), shares.iter().max());
                    assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "{shares:?}");
                }
            }
        }
    }

    #[test]
    fn one_probe_goes_to_one_replica_and_which_depends_on_the_endpoint() {
        let probers: HashSet<usize> = (0..20u128)
            .map(|n| {
                let shares = shares(1, 3, Uuid::from_u128(n));
                assert_eq!(shares.iter().filter(|s| **s == 1).count(), 1);
                shares.iter().position(|s| *s == 1).unwrap_or(usize::MAX)
            })
            .collect();
        assert_eq!(probers.len(), 3, "the probes spread over the replicas");
    }

    #[test]
    fn alone_a_replica_takes_the_whole_allowance() {
        let fleet = Fleet::alone();
        assert_eq!(fleet.share(8, Uuid::now_v7()), 8);
    }
}
