//! Group commit for publishes. A commit costs a disk flush (about 0.2 ms
//! here, more on real disks), so one transaction per `Publish` caps a
//! Postgres at a few thousand publishes per second whatever the hardware.
//! Callers instead hand their events to a few committer tasks; each takes
//! every job waiting when it gets its turn, writes them in one transaction,
//! and answers each caller once that transaction has committed. Under light
//! load a job waits for nobody (it is alone in its commit); under heavy load
//! commits grow, and throughput with them, while every caller is still
//! answered only after its own events are durable.
//!
//! A failed transaction fails every job in it: none of them was accepted,
//! so the callers retry and nothing is lost. Idempotency keys work across
//! jobs of one transaction as across transactions (the first one wins).

use std::sync::Arc;

use diesel_async::AsyncConnection;
use tokio::sync::{Mutex, mpsc, oneshot};

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

/// Hands events to the committers and waits for their commit.
#[derive(Debug, Clone)]
pub struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("events", &self.events.len())
            .finish()
    }
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
        self.jobs
            .send(Job { events, reply })
            .await
            .map_err(|_| DispatchError::Unavailable("the dispatcher is shutting down".into()))?;
        answer
            .await
            .map_err(|_| DispatchError::internal("the committer stopped before answering"))?
            .map_err(DispatchError::internal)
    }
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
        let result = async {
            let mut conn = pool.get().await?;
            conn.transaction(async |conn| events::insert(conn, &all).await)
                .await
        }
        .await;
        match result {
            Ok(stored) => {
                let mut stored = stored.into_iter();
                for job in batch {
                    let mine: Vec<Stored> = stored.by_ref().take(job.events.len()).collect();
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(error) => {
                let error: DispatchError = error;
                tracing::error!(error = %error, jobs = batch.len(), "a publish commit failed");
                for job in batch {
                    let _ = job.reply.send(Err(format!("the commit failed: {error}")));
                }
            }
        }
    }
}
