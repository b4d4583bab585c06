//! Group commit for publishes. A commit costs a disk flush, so one
//! transaction per `Publish` caps a Postgres at a few thousand publishes per
//! second whatever the hardware. Callers instead hand their events to a few
//! committer tasks; each takes every job waiting when it gets its turn,
//! writes them in one transaction on its own connection, and answers each
//! caller once that transaction has committed. Under light load a job waits
//! for nobody (it is alone in its commit); under heavy load commits grow,
//! and throughput with them, while every caller is still answered only
//! after its own events are durable.
//!
//! A transaction that fails, or whose commit goes unanswered, is looked up
//! before anyone is answered (`resolve`): it may have committed. If it did
//! not, each of its jobs is retried in a transaction of its own, so that
//! one bad job fails alone; a job that still fails was not accepted, and
//! its caller hears UNAVAILABLE and may retry (nothing was stored for it).
//! If the database cannot be asked in time, the caller hears UNKNOWN: its
//! events may be stored. Within a transaction the events are written in
//! idempotency-key order, so that committers waiting on each other's keys
//! always wait in the same order and cannot deadlock. Idempotency keys
//! work across jobs of one transaction as across transactions: the first
//! one wins.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection};
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use super::DbPool;
use super::events::{self, Stored};
use super::models::NewEvent;
use super::resolve::{Backend, Outcome, resolve};
use crate::domain::DispatchError;

/// Most events in one transaction: small enough that, under load, several
/// committers write at once (one Postgres backend per committer, so both
/// cores of a small machine work), large enough to share each flush widely.
const MAX_EVENTS_PER_COMMIT: usize = 500;

/// The longest a write may take before its outcome is looked up instead:
/// a link that went silent answers nothing, ever.
const WRITE_WITHIN: Duration = Duration::from_secs(10);

struct Job {
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<Vec<Stored>, Refusal>>,
}

/// Why a job's events were not acknowledged.
#[derive(Debug)]
enum Refusal {
    /// Nothing of them is stored: a retry is safe.
    NotStored(String),
    /// They may be stored, under these event ids.
    Unknown(Vec<Uuid>),
}

impl Refusal {
    fn unknown(events: &[NewEvent]) -> Self {
        Self::Unknown(events.iter().map(|e| e.id).collect())
    }
}

/// A committer's own connection, and its server process, which is ended
/// if a transaction's outcome has to be looked up.
struct Session {
    conn: AsyncPgConnection,
    backend: Backend,
}

impl Session {
    async fn open(pool: &DbPool) -> Result<Self, DispatchError> {
        let mut conn = pool
            .dedicated_connection()
            .await
            .map_err(DispatchError::internal)?;
        let backend = Backend::of(&mut conn).await?;
        Ok(Self { conn, backend })
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("events", &self.events.len())
            .finish()
    }
}

/// Hands events to the committers and waits for their commit.
#[derive(Debug, Clone)]
pub(crate) struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl Committer {
    /// Starts `tasks` committers on `pool` (they end when the committer is
    /// dropped).
    pub(crate) fn start(pool: DbPool, tasks: usize) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>(8_192);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..tasks.max(1) {
            tokio::spawn(commit_loop(pool.clone(), queue.clone()));
        }
        Self { jobs }
    }

    /// Stores `events` (all or none) and answers once they are committed.
    pub(crate) async fn store(&self, events: Vec<NewEvent>) -> Result<Vec<Stored>, DispatchError> {
        let (reply, answer) = oneshot::channel();
        let stopping = || DispatchError::Unavailable("the dispatcher is shutting down".into());
        self.jobs
            .send(Job { events, reply })
            .await
            .map_err(|_| stopping())?;
        answer
            .await
            .map_err(|_| stopping())?
            .map_err(|refusal| match refusal {
                Refusal::NotStored(why) => DispatchError::Unavailable(format!(
                    "the events could not be stored ({why}); nothing was accepted, retry"
                )),
                Refusal::Unknown(ids) => DispatchError::OutcomeUnknown(format!(
                    "the database did not confirm the commit and could not be asked in time: \
                     the events may be stored, as {}; publishing them again without an \
                     idempotency key may store them twice",
                    ids.iter()
                        .map(Uuid::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            })
    }
}

/// Writes `events` in one transaction on the session (opened first if
/// there is none), in idempotency-key order (ordered events in publish
/// order); answers each event's result by event id.
async fn write(
    pool: &DbPool,
    session: &mut Option<Session>,
    events: &mut [NewEvent],
) -> Result<HashMap<Uuid, Stored>, DispatchError> {
    // A stable sort: ordered events are left in publish order among their
    // partner's (their lanes' locks, taken first, keep those inserts apart).
    fn key(e: &NewEvent) -> Option<&str> {
        e.idempotency_key
            .as_deref()
            .filter(|_| e.ordering_key.is_none())
    }
    events.sort_by(|a, b| {
        a.partner_id
            .cmp(&b.partner_id)
            .then_with(|| key(a).cmp(&key(b)))
    });
    let session = match session {
        Some(session) => session,
        None => session.insert(Session::open(pool).await?),
    };
    let stored = session
        .conn
        .transaction(async |conn| events::insert(conn, events).await)
        .await?;
    // `insert` answers in input order.
    Ok(events.iter().map(|e| e.id).zip(stored).collect())
}

/// Writes `events` in one transaction and, if that fails or goes
/// unanswered, finds out whether it committed all the same.
async fn commit(
    pool: &DbPool,
    session: &mut Option<Session>,
    mut events: Vec<NewEvent>,
) -> Result<HashMap<Uuid, Stored>, Refusal> {
    let error = match tokio::time::timeout(WRITE_WITHIN, write(pool, session, &mut events)).await {
        Ok(Ok(stored)) => return Ok(stored),
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!("the database did not answer within {WRITE_WITHIN:?}"),
    };
    // What state the connection is in is unknown: it is not used again.
    let Some(failed) = session.take() else {
        // No connection, so no transaction.
        return Err(Refusal::NotStored(error));
    };
    match resolve(pool, failed.backend, &events).await {
        Outcome::Committed(stored) => {
            tracing::warn!(error = %error, events = events.len(), "a publish commit went unanswered; it had committed");
            Ok(stored)
        }
        Outcome::NotCommitted => Err(Refusal::NotStored(error)),
        Outcome::Unknown => {
            tracing::error!(error = %error, events = events.len(), "whether a publish committed is unknown");
            Err(Refusal::unknown(&events))
        }
    }
}

/// Each job's results, in the order of its events.
fn answer(job: &Job, stored: &mut HashMap<Uuid, Stored>) -> Result<Vec<Stored>, Refusal> {
    job.events
        .iter()
        .map(|e| stored.remove(&e.id))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Refusal::NotStored("an event's result went missing".to_owned()))
}

async fn commit_loop(pool: DbPool, queue: Arc<Mutex<mpsc::Receiver<Job>>>) {
    let mut session = None;
    loop {
        // Take the queue only to gather a batch, so that another committer
        // can gather the next one while this one writes.
        let batch = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut size = first.events.len();
            let mut batch = vec![first];
            while size < MAX_EVENTS_PER_COMMIT {
                match queue.try_recv() {
                    Ok(job) => {
                        size += job.events.len();
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            batch
        };
        let all: Vec<NewEvent> = batch
            .iter()
            .flat_map(|job| job.events.iter().cloned())
            .collect();
        match commit(&pool, &mut session, all).await {
            Ok(mut stored) => {
                for job in batch {
                    let result = answer(&job, &mut stored);
                    let _ = job.reply.send(result);
                }
            }
            Err(Refusal::NotStored(error)) if batch.len() > 1 => {
                tracing::warn!(error = %error, jobs = batch.len(), "a shared publish commit failed; committing its jobs one by one");
                for job in batch {
                    let result = commit(&pool, &mut session, job.events.clone())
                        .await
                        .and_then(|mut stored| answer(&job, &mut stored));
                    if let Err(refusal) = &result {
                        tracing::error!(refusal = ?refusal, "a publish commit failed");
                    }
                    let _ = job.reply.send(result);
                }
            }
            Err(refusal) => {
                tracing::error!(refusal = ?refusal, "a publish commit failed");
                for job in batch {
                    let refusal = match &refusal {
                        Refusal::NotStored(why) => Refusal::NotStored(why.clone()),
                        Refusal::Unknown(_) => Refusal::unknown(&job.events),
                    };
                    let _ = job.reply.send(Err(refusal));
                }
            }
        }
    }
}
