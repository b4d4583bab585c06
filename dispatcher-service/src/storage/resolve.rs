//! What became of a publish transaction whose end went unanswered.
//!
//! A `COMMIT` can reach the server and commit while its answer is lost (a
//! reset link, a timeout): the events are stored, and the dispatcher does
//! not know it. Answering "not stored, retry" would make a publisher
//! without an idempotency key store its events twice. So before anything
//! is answered, the transaction's server process is ended, and the
//! dispatcher waits until it is gone: from then on its transaction has
//! committed or never will. Then the events' ids, minted here before the
//! insert, say which: all of the transaction's new events are there, or
//! none is. Only when the database cannot be asked in time is the outcome
//! unknown, and the publisher is told so (not "retry").

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Int4, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::DbPool;
use super::events::{self, Stored};
use super::models::NewEvent;
use super::schema::events as table;
use crate::domain::DispatchError;

/// How long the outcome may take to find out, before it is called unknown.
const RESOLVE_WITHIN: Duration = Duration::from_secs(10);

/// The server process of a connection, named so that a later process
/// given the same pid is never taken for it.
#[derive(Debug, Clone, Copy, QueryableByName)]
pub(crate) struct Backend {
    #[diesel(sql_type = Int4)]
    pid: i32,
    #[diesel(sql_type = Timestamptz)]
    started: DateTime<Utc>,
}

impl Backend {
    /// The server process behind `conn`.
    pub(crate) async fn of(conn: &mut AsyncPgConnection) -> Result<Self, DispatchError> {
        Ok(diesel::sql_query(
            "SELECT pid, backend_start AS started FROM pg_stat_activity WHERE pid = pg_backend_pid()",
        )
        .get_result(conn)
        .await?)
    }
}

/// What became of the transaction.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// It committed: each event's result, by event id.
    Committed(HashMap<Uuid, Stored>),
    /// It did not, and never will: nothing of it is stored.
    NotCommitted,
    /// The database could not be asked in time.
    Unknown,
}

/// Finds out what became of the transaction that `backend` ran for
/// `events`: ends that process, then looks for the events.
pub(crate) async fn resolve(pool: &DbPool, backend: Backend, events: &[NewEvent]) -> Outcome {
    let deadline = tokio::time::Instant::now() + RESOLVE_WITHIN;
    loop {
        match tokio::time::timeout_at(deadline, try_resolve(pool, backend, events)).await {
            Ok(Ok(outcome)) => return outcome,
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "cannot yet tell whether a publish committed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(_) => return Outcome::Unknown,
        }
    }
}

async fn try_resolve(
    pool: &DbPool,
    backend: Backend,
    new: &[NewEvent],
) -> Result<Outcome, DispatchError> {
    let mut conn = pool.get().await?;
    end_process(&mut conn, backend).await?;
    let ids: Vec<Uuid> = new.iter().map(|e| e.id).collect();
    let found: HashMap<Uuid, Option<Uuid>> = table::table
        .filter(table::id.eq_any(&ids))
        .select((table::id, table::delivery_id))
        .load::<(Uuid, Option<Uuid>)>(&mut conn)
        .await?
        .into_iter()
        .collect();
    if found.is_empty() {
        // Events whose key was used before insert nothing: a transaction of
        // only those stored nothing either way, and writing it again is
        // harmless.
        return Ok(Outcome::NotCommitted);
    }
    let mut stored = HashMap::with_capacity(new.len());
    for event in new {
        let result = match found.get(&event.id) {
            Some(delivery_id) => Stored {
                event_id: event.id,
                delivery_id: *delivery_id,
                duplicate: false,
            },
            None => events::first_of_key(&mut conn, event).await?,
        };
        stored.insert(event.id, result);
    }
    Ok(Outcome::Committed(stored))
}

/// Ends `backend`'s process and waits until it has exited.
async fn end_process(conn: &mut AsyncPgConnection, backend: Backend) -> Result<(), DispatchError> {
    #[derive(QueryableByName)]
    struct Left {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        count: i64,
    }
    diesel::sql_query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE pid = $1 AND backend_start = $2",
    )
    .bind::<Int4, _>(backend.pid)
    .bind::<Timestamptz, _>(backend.started)
    .execute(conn)
    .await?;
    loop {
        let left: Left = diesel::sql_query(
            "SELECT count(*) AS count FROM pg_stat_activity WHERE pid = $1 AND backend_start = $2",
        )
        .bind::<Int4, _>(backend.pid)
        .bind::<Timestamptz, _>(backend.started)
        .get_result(conn)
        .await?;
        if left.count == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
