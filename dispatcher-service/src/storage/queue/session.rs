//! The sessions the queue's statements run on: one connection per
//! [`Role`], kept outside the pool and set up for its statements.

use std::time::Duration;

use diesel_async::AsyncPgConnection;

use crate::domain::DispatchError;
use crate::storage::DbPool;

/// What a [`QueueConnection`] is for; its session is set up to match.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    /// Claims and sweeps, and nothing else:
    ///
    /// - **Its commits do not wait for the WAL flush.** A database crash
    ///   can lose the claims of its last moments (`wal_writer_delay`): the
    ///   cursor goes back, and their deliveries are claimed again (at least
    ///   once, never lost). A lost claim has no `claims` row, which fences
    ///   off its holder's outcome: the new claim's holder may hold the
    ///   delivery at the same due time, and only its outcome is written
    ///   (found by the queue's model, `dispatcher-service/model/`). Any
    ///   synchronous commit after a claim, such as the completion of its
    ///   deliveries, flushes it. Claims run one at a time, the delivery
    ///   loop's serial step, and nearly half of their time in Postgres went
    ///   on waiting for the flush.
    /// - **It never sorts.** On tables never analysed (a new or restored
    ///   database, or autovacuum off or behind), the planner guessed about
    ///   a hundred due rows and chose to read and sort every due row
    ///   instead of reading the first ones of the due index: for a backlog
    ///   of 100,000, 6.5 MB sorted on disk per claim, for the first claims
    ///   on each connection. The cursor's place, unknown when the claim is
    ///   planned, leaves the same guess open; with sorting priced out, a
    ///   claim reads the due index whatever the statistics say.
    /// - **It never compiles a plan (no JIT).** A plan with a priced-out
    ///   node costs more than `jit_above_cost`, and compiling it took
    ///   70–200 ms of a claim that otherwise takes under one.
    /// - **The server ends it when it idles inside a transaction** for
    ///   longer than the connection's timeout. A sweep holds the cursor's
    ///   row lock between two statements; a dispatcher cut off from its
    ///   database at that moment would otherwise leave the lock held on a
    ///   server that cannot tell it is gone (through a proxy, or for the
    ///   two hours of the kernel's keepalive), and every replica's claims
    ///   and sweeps would wait behind it.
    Claims,
    /// Completions, and nothing else. **It never scans `deliveries`
    /// sequentially.** The completion is a prepared statement whose generic
    /// plan, when first made on an empty table (a new database), joined
    /// its batch to a sequential scan of `deliveries`, and kept doing so as
    /// the table grew, until an `ANALYZE` replanned it. With sequential
    /// scans priced out, each outcome finds its row through the primary
    /// key whatever the statistics say (and, as for claims, no JIT for
    /// the plan this prices). Its commits stay synchronous: an outcome the
    /// partner's delivery log shows is durable.
    Completions,
}

impl Role {
    /// The session settings of a connection for this role whose statements
    /// may take up to `timeout`.
    pub fn session(self, timeout: Duration) -> String {
        let role = match self {
            Role::Claims => "SET synchronous_commit = off; SET enable_sort = off",
            Role::Completions => "SET enable_seqscan = off",
        };
        format!(
            "{role}; SET jit = off; SET idle_in_transaction_session_timeout = {}",
            timeout.as_millis().clamp(1, i32::MAX as u128)
        )
    }
}

/// A connection of the delivery loop's own, outside the pool, for one
/// [`Role`]. Claims run one at a time, and so do completions: each holds
/// its connection rather than waiting for a pooled one, and its session
/// settings stay with it. Made when first needed, and made again after an
/// error or a timeout: a connection the network dropped silently would
/// otherwise hang its statement until the kernel gave up on it, many
/// minutes later.
pub struct QueueConnection {
    pool: DbPool,
    role: Role,
    /// The longest a statement (with the connecting, if needed) may take.
    timeout: Duration,
    connection: Option<AsyncPgConnection>,
}

impl std::fmt::Debug for QueueConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueConnection")
            .field("role", &self.role)
            .field("timeout", &self.timeout)
            .field("connected", &self.connection.is_some())
            .finish()
    }
}

impl QueueConnection {
    pub fn new(pool: DbPool, role: Role, timeout: Duration) -> Self {
        Self {
            pool,
            role,
            timeout,
            connection: None,
        }
    }

    /// Runs `work` on the connection, made first if there is none, within
    /// the timeout. After an error or a timeout the connection is dropped,
    /// and the next call makes a new one.
    pub async fn run<T>(
        &mut self,
        work: impl AsyncFnOnce(&mut AsyncPgConnection) -> Result<T, DispatchError>,
    ) -> Result<T, DispatchError> {
        let result = tokio::time::timeout(self.timeout, async {
            let connection = self.connection().await?;
            work(connection).await
        })
        .await
        .unwrap_or_else(|_| {
            Err(DispatchError::internal(format!(
                "the {:?} connection took more than {:?}",
                self.role, self.timeout
            )))
        });
        if result.is_err() {
            self.connection = None;
        }
        result
    }

    async fn connection(&mut self) -> Result<&mut AsyncPgConnection, DispatchError> {
        use diesel_async::SimpleAsyncConnection as _;
        let connection = match self.connection.take() {
            Some(connection) => connection,
            None => {
                let mut connection = self
                    .pool
                    .dedicated_connection()
                    .await
                    .map_err(DispatchError::internal)?;
                connection
                    .batch_execute(&self.role.session(self.timeout))
                    .await?;
                connection
            }
        };
        Ok(self.connection.insert(connection))
    }
}
