//! Group commit for publishes. A commit costs a disk flush, so one
//! transaction per `Publish` caps a Postgres at a few thousand publishes per
//! second whatever the hardware. Callers instead hand their events to a few
//! committer tasks; each takes every job waiting when it gets its turn,
//! writes them in one transaction, and answers each caller once that
//! transaction has committed. Under light load a job waits for nobody (it
//! is alone in its commit); under heavy load commits grow, and throughput
//! with them, while every caller is still answered only after its own
//! events are durable.
//!
//! If a shared transaction fails, each of its jobs is retried in a
//! transaction of its own, so that one bad job fails alone; a job that
//! still fails was not accepted, and its caller hears UNAVAILABLE and may
//! retry (nothing was stored for it). Within a transaction the events are
//! written in idempotency-key order, so that committers waiting on each
//! other's keys always wait in the same order and cannot deadlock.
//! Idempotency keys work across jobs of one transaction as across
//! transactions: the first one wins.

use std::collections::HashMap;
use std::sync::Arc;

use diesel_async::AsyncConnection;
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use super::DbPool;
use super::events::{self, Stored};
use super::models::NewEvent;
use crate::domain::DispatchError;

/// Most events in one transaction: small enough that, under load, several
/// committers write at once (one Postgres backend per committer, so both
/// cores of a small machine work), large enough to share each flush widely.
const MAX_EVENTS_PER_COMMIT: usize = 500;

struct Job {
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<Vec<Stored>, String>>,
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
pub struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl Committer {
    /// Starts `tasks` committers on `pool` (they end when the committer is
    /// dropped).
    pub fn start(pool: DbPool, tasks: usize) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>(8_192);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..tasks.max(1) {
            tokio::spawn(commit_loop(pool.clone(), queue.clone()));
        }
        Self { jobs }
    }

    /// Stores `events` (all or none) and answers once they are committed.
    pub async fn store(&self, events: Vec<NewEvent>) -> Result<Vec<Stored>, DispatchError> {
        let (reply, answer) = oneshot::channel();
        let stopping = || DispatchError::Unavailable("the dispatcher is shutting down".into());
        self.jobs
            .send(Job { events, reply })
            .await
            .map_err(|_| stopping())?;
        answer.await.map_err(|_| stopping())?.map_err(|why| {
            DispatchError::Unavailable(format!(
                "the events could not be stored ({why}); nothing was accepted, retry"
            ))
        })
    }
}

/// Writes `events` in one transaction, in idempotency-key order; answers
/// each event's result by event id.
async fn write(
    pool: &DbPool,
    mut events: Vec<NewEvent>,
) -> Result<HashMap<Uuid, Stored>, DispatchError> {
    events.sort_by(|a, b| {
        (a.partner_id, &a.idempotency_key).cmp(&(b.partner_id, &b.idempotency_key))
    });
    let mut conn = pool.get().await?;
    let stored = conn
        .transaction(async |conn| events::insert(conn, &events).await)
        .await?;
    // `insert` answers in input order.
    Ok(events.iter().map(|e| e.id).zip(stored).collect())
}

/// Each job's results, in the order of its events.
fn answer(job: &Job, stored: &mut HashMap<Uuid, Stored>) -> Result<Vec<Stored>, String> {
    job.events
        .iter()
        .map(|e| stored.remove(&e.id))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| "an event's result went missing".to_owned())
}

async fn commit_loop(pool: DbPool, queue: Arc<Mutex<mpsc::Receiver<Job>>>) {
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
        match write(&pool, all).await {
            Ok(mut stored) => {
                for job in batch {
                    let result = answer(&job, &mut stored);
                    let _ = job.reply.send(result);
                }
            }
            Err(error) if batch.len() > 1 => {
                tracing::warn!(error = %error, jobs = batch.len(), "a shared publish commit failed; committing its jobs one by one");
                for job in batch {
                    let result = match write(&pool, job.events.clone()).await {
                        Ok(mut stored) => answer(&job, &mut stored),
                        Err(error) => {
                            tracing::error!(error = %error, "a publish commit failed");
                            Err(error.to_string())
                        }
                    };
                    let _ = job.reply.send(result);
                }
            }
            Err(error) => {
                tracing::error!(error = %error, "a publish commit failed");
                for job in batch {
                    let _ = job.reply.send(Err(error.to_string()));
                }
            }
        }
    }
}
