//! The delivery queue, shared by every dispatcher replica.
//!
//! - **Claim**: one statement takes up to N due deliveries with
//!   `FOR UPDATE SKIP LOCKED` (replicas never wait on each other), gives
//!   them a fresh lease token (one per claim: a delivery is in a claim at
//!   most once, so the pair (delivery, token) still names one claim of it),
//!   and pushes `next_attempt_at` to the end of the lease. A worker that
//!   dies simply lets the lease run out: the delivery is due again and
//!   another worker claims it. Claims read the due index from where the
//!   last one left off, not from its start (see [`Head`]).
//! - **Complete**: one statement writes a batch of outcomes, each only where
//!   the lease token is still the one minted at its claim. A worker whose
//!   lease expired and was taken over writes nothing (fencing), so it
//!   cannot overwrite the outcome of the worker that took over.
//!
//! Each runs on a [`QueueConnection`] of its own, whose session keeps its
//! plan on the queue's indexes whatever the tables' statistics say (see
//! [`Role`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, Bool, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::{QueryableByName, sql_types};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{DbPool, Prepared};
use crate::domain::{DeliveryStatus, DispatchError};

/// A claimed delivery with what is needed to attempt it.
#[derive(Debug, Clone, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub lease_token: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub event_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub partner_id: Uuid,
    #[diesel(sql_type = Int4)]
    pub notification_type: i32,
    #[diesel(sql_type = Int4)]
    pub attempt_count: i32,
    #[diesel(sql_type = Int4)]
    pub series_attempts: i32,
    #[diesel(sql_type = Bool)]
    pub is_test: bool,
    #[diesel(sql_type = sql_types::Bytea, deserialize_as = Vec<u8>)]
    pub payload: bytes::Bytes,
    #[diesel(sql_type = Nullable<Text>)]
    pub trace_context: Option<String>,
}

/// The claim statement: up to `$1` deliveries due since `$4`, the longest
/// due first, leased for `$2` milliseconds under the token `$3`; each with
/// when it was due.
pub const CLAIM: &str = "WITH due AS (
         SELECT id, next_attempt_at FROM deliveries
         WHERE status = 'pending' AND next_attempt_at >= $4 AND next_attempt_at <= now()
         ORDER BY next_attempt_at
         LIMIT $1
         FOR UPDATE SKIP LOCKED
     )
     UPDATE deliveries d
     SET lease_token = $3,
         next_attempt_at = now() + make_interval(secs => $2 / 1000.0),
         updated_at = now()
     FROM due, events e
     WHERE d.id = due.id AND e.id = d.event_id
     RETURNING d.id, d.lease_token, d.event_id, d.partner_id, d.notification_type,
               d.attempt_count, d.series_attempts, d.is_test, e.payload, e.trace_context,
               due.next_attempt_at AS was_due";

/// A claimed row: the delivery, and when it was due.
#[derive(QueryableByName)]
struct ClaimedRow {
    #[diesel(embed)]
    claimed: Claimed,
    #[diesel(sql_type = Timestamptz)]
    was_due: DateTime<Utc>,
}

/// Where the next claim starts reading the due index.
///
/// A claim moves each row it takes to the end of its lease, which writes a
/// new version of the row, with a new entry at the far end of the due
/// index; the old entry stays where it was, dead, until a `VACUUM`. So the
/// head of the due index fills with the dead entries of everything claimed
/// since the last one, and a claim that read the index from its start
/// stepped over all of them first: for a backlog of 100,000 on a table
/// never vacuumed, about half of them on average (a sixth of the claim's
/// time in `bench deliver`), and more with every claim until a `VACUUM`.
/// Autovacuum on a large table comes rarely (a fifth of it updated, by
/// default), so in production the head grows the same way between two.
/// After a full read that took only rows from behind, the head starts
/// there again and catches up within a claim or two.
///
/// A claim therefore starts at the latest due time the previous claim took,
/// less [`HEAD_MARGIN`]; and once per `rescan_every` at the start, for a
/// row that became due behind the head: one whose writing transaction
/// committed long after it began (`now()` is its start), one released with
/// a clock behind the database's, or one whose claim by another replica
/// rolled back. Such a row waits for the next full read at most; nothing
/// is skipped for good.
#[derive(Debug)]
pub struct Head {
    from: DateTime<Utc>,
    rescan_every: Duration,
    rescan_at: std::time::Instant,
}

/// How far behind the latest due time taken the next claim starts: longer
/// than a publish takes to commit, and than the dispatchers' clocks drift
/// from the database's.
pub const HEAD_MARGIN: Duration = Duration::from_millis(100);

impl Head {
    /// A head that reads the whole queue first, and again every
    /// `rescan_every`.
    pub fn new(rescan_every: Duration) -> Self {
        Self {
            from: DateTime::UNIX_EPOCH,
            rescan_every,
            rescan_at: std::time::Instant::now() + rescan_every,
        }
    }

    fn start(&mut self) -> DateTime<Utc> {
        if std::time::Instant::now() >= self.rescan_at {
            self.from = DateTime::UNIX_EPOCH;
            self.rescan_at = std::time::Instant::now() + self.rescan_every;
        }
        self.from
    }

    fn passed(&mut self, latest_due: DateTime<Utc>) {
        let margin = chrono::Duration::from_std(HEAD_MARGIN).unwrap_or_default();
        self.from = self.from.max(latest_due - margin);
    }
}

/// What a [`QueueConnection`] is for; its session is set up to match.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    /// Claims, and nothing else:
    ///
    /// - **Its commits do not wait for the WAL flush.** A database crash
    ///   can lose the claims of its last moments (`wal_writer_delay`): their
    ///   deliveries are then as they were before, due again under their
    ///   previous lease token. An outcome written later under the lost
    ///   token is fenced off, and the delivery is attempted again (at least
    ///   once, never lost); a worker still holding the previous token (one
    ///   that had stalled past its lease) could write its own outcome
    ///   meanwhile, a real attempt, so the log would miss the lost claim's
    ///   attempt rather than show a wrong one. Any synchronous commit after
    ///   a claim, such as the completion of its deliveries, flushes it.
    ///   Claims run one at a time, the delivery loop's serial step, and
    ///   nearly half of their time in Postgres went on waiting for the
    ///   flush.
    /// - **It never sorts.** On tables never analysed (a new or restored
    ///   database, or autovacuum off or behind), the planner guessed about
    ///   a hundred due rows and chose to read and sort every due row
    ///   instead of reading the first ones of the due index: for a backlog
    ///   of 100,000, 6.5 MB sorted on disk per claim, for the first claims
    ///   on each connection. Since the claim has a lower bound too (the
    ///   [`Head`]), it is planned on the due index anyway; sorting stays
    ///   priced out as a guard, so that a claim reads the due index
    ///   whatever the statistics say.
    Claims,
    /// Completions, and nothing else. **It never scans `deliveries`
    /// sequentially.** The completion is a prepared statement whose generic
    /// plan, when first made on an empty table (a new database), joined
    /// its batch to a sequential scan of `deliveries`, and kept doing so as
    /// the table grew, until an `ANALYZE` replanned it. With sequential
    /// scans priced out, each outcome finds its row through the primary
    /// key whatever the statistics say. Its commits stay synchronous: an
    /// outcome the partner's delivery log shows is durable.
    Completions,
}

impl Role {
    fn session(self) -> &'static str {
        match self {
            Role::Claims => "SET synchronous_commit = off; SET enable_sort = off",
            Role::Completions => "SET enable_seqscan = off",
        }
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
                connection.batch_execute(self.role.session()).await?;
                connection
            }
        };
        Ok(self.connection.insert(connection))
    }
}

/// Claims up to `limit` due deliveries for `lease`, reading the due index
/// from `head`, and moves `head` past them.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    limit: u32,
    lease: Duration,
    head: &mut Head,
) -> Result<Vec<Claimed>, DispatchError> {
    let lease_ms = i32::try_from(lease.as_millis()).unwrap_or(i32::MAX);
    // Minted here rather than by `gen_random_uuid()` for every row.
    let token = Uuid::new_v4();
    let rows: Vec<ClaimedRow> = Prepared(
        diesel::sql_query(CLAIM)
            .bind::<Int4, _>(i32::try_from(limit).unwrap_or(i32::MAX))
            .bind::<Int4, _>(lease_ms)
            .bind::<SqlUuid, _>(token)
            .bind::<Timestamptz, _>(head.start()),
    )
    .load(conn)
    .await?;
    if let Some(latest) = rows.iter().map(|r| r.was_due).max() {
        head.passed(latest);
    }
    Ok(rows.into_iter().map(|r| r.claimed).collect())
}

/// How a claimed delivery ends this round.
#[derive(Debug, Clone)]
pub struct Completion {
    pub delivery_id: Uuid,
    pub lease_token: Uuid,
    /// `Pending` with `next_attempt_at` to retry (or to release unattempted).
    pub status: DeliveryStatus,
    pub next_attempt_at: DateTime<Utc>,
    /// The attempt made, if one was: counted and logged. `None` releases or
    /// cancels without counting.
    pub attempt: Option<AttemptRecord>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub registration_id: Uuid,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub response_status: Option<i32>,
    pub response_excerpt: String,
}

#[derive(QueryableByName)]
struct Applied {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    token: Uuid,
}

/// The completion statement: a batch of outcomes as eleven arrays (see
/// [`complete`]), each written only under its lease token, with an attempt
/// row for each attempt made.
pub const COMPLETE: &str = "WITH input AS (
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::bool[],
                                  $6::text[], $7::uuid[], $8::timestamptz[], $9::int4[], $10::int4[], $11::text[])
                 AS t(id, token, status, next_at, counted, error, registration_id, started_at,
                      duration_ms, response_status, excerpt)
         ),
         updated AS (
             UPDATE deliveries d
             SET status = i.status,
                 next_attempt_at = i.next_at,
                 lease_token = NULL,
                 attempt_count = d.attempt_count + i.counted::int,
                 series_attempts = d.series_attempts + i.counted::int,
                 last_error = CASE WHEN i.counted OR i.status <> 'pending' THEN i.error ELSE d.last_error END,
                 last_response_status = CASE WHEN i.counted THEN i.response_status ELSE d.last_response_status END,
                 updated_at = now(),
                 completed_at = CASE WHEN i.status = 'pending' THEN NULL ELSE now() END
             FROM input i
             WHERE d.id = i.id AND d.lease_token = i.token
             RETURNING d.id, d.attempt_count, i.token, i.counted, i.registration_id, i.started_at,
                       i.duration_ms, i.response_status, i.error, i.excerpt
         ),
         -- One row per delivery updated, numbered by the count just raised:
         -- never a conflict, so a plain insert (no ON CONFLICT, whose
         -- speculative insertion cost ~1.7 us a row).
         logged AS (
             INSERT INTO attempts (delivery_id, attempt_number, registration_id, started_at,
                                   duration_ms, response_status, error, response_excerpt)
             SELECT id, attempt_count, registration_id, started_at, duration_ms,
                    response_status, error, excerpt
             FROM updated
             WHERE counted
         )
         SELECT id, token FROM updated";

/// Writes `completions` in one statement and answers the (delivery, lease
/// token) pairs whose lease was still theirs; the others were taken over
/// and changed nothing. Two completions of one delivery (an old claim and
/// its successor) are told apart by their tokens.
pub async fn complete(
    conn: &mut AsyncPgConnection,
    completions: &[Completion],
) -> Result<Vec<(Uuid, Uuid)>, DispatchError> {
    if completions.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids = Vec::with_capacity(completions.len());
    let mut tokens = Vec::with_capacity(completions.len());
    let mut statuses = Vec::with_capacity(completions.len());
    let mut next_at = Vec::with_capacity(completions.len());
    let mut counted = Vec::with_capacity(completions.len());
    let mut errors = Vec::with_capacity(completions.len());
    let mut registrations = Vec::with_capacity(completions.len());
    let mut started = Vec::with_capacity(completions.len());
    let mut durations = Vec::with_capacity(completions.len());
    let mut response_statuses = Vec::with_capacity(completions.len());
    let mut excerpts = Vec::with_capacity(completions.len());
    for c in completions {
        ids.push(c.delivery_id);
        tokens.push(c.lease_token);
        statuses.push(c.status.as_str().to_owned());
        next_at.push(c.next_attempt_at);
        counted.push(c.attempt.is_some());
        errors.push(c.error.clone());
        registrations.push(c.attempt.as_ref().map(|a| a.registration_id));
        started.push(
            c.attempt
                .as_ref()
                .map_or(c.next_attempt_at, |a| a.started_at),
        );
        durations.push(c.attempt.as_ref().map_or(0, |a| a.duration_ms));
        response_statuses.push(c.attempt.as_ref().and_then(|a| a.response_status));
        excerpts.push(
            c.attempt
                .as_ref()
                .map(|a| a.response_excerpt.clone())
                .unwrap_or_default(),
        );
    }
    let applied: Vec<Applied> = Prepared(
        diesel::sql_query(COMPLETE)
            .bind::<Array<SqlUuid>, _>(ids)
            .bind::<Array<SqlUuid>, _>(tokens)
            .bind::<Array<Text>, _>(statuses)
            .bind::<Array<Timestamptz>, _>(next_at)
            .bind::<Array<Bool>, _>(counted)
            .bind::<Array<Nullable<Text>>, _>(errors)
            .bind::<Array<Nullable<SqlUuid>>, _>(registrations)
            .bind::<Array<Timestamptz>, _>(started)
            .bind::<Array<Int4>, _>(durations)
            .bind::<Array<Nullable<Int4>>, _>(response_statuses)
            .bind::<Array<Text>, _>(excerpts),
    )
    .load(conn)
    .await?;
    Ok(applied.into_iter().map(|a| (a.id, a.token)).collect())
}

/// Pending deliveries and how long the oldest due one has waited.
pub async fn depth(conn: &mut AsyncPgConnection) -> Result<(i64, Option<f64>), DispatchError> {
    #[derive(QueryableByName)]
    struct Depth {
        #[diesel(sql_type = sql_types::BigInt)]
        pending: i64,
        #[diesel(sql_type = Nullable<sql_types::Double>)]
        oldest_due_seconds: Option<f64>,
    }
    let depth: Depth = diesel::sql_query(
        "SELECT count(*) AS pending,
                extract(epoch FROM now() - min(next_attempt_at) FILTER (WHERE next_attempt_at <= now()))::float8
                    AS oldest_due_seconds
         FROM deliveries WHERE status = 'pending'",
    )
    .get_result(conn)
    .await?;
    Ok((depth.pending, depth.oldest_due_seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn a_head_reads_everything_first_then_from_just_behind_the_latest_taken() {
        let mut head = Head::new(Duration::from_secs(3600));
        assert_eq!(head.start(), DateTime::UNIX_EPOCH);
        head.passed(at(10));
        assert_eq!(head.start(), at(10) - chrono::Duration::milliseconds(100));
        // A claim that took only older rows (a full read, or rows taken
        // behind the head) does not move it back.
        head.passed(at(5));
        assert_eq!(head.start(), at(10) - chrono::Duration::milliseconds(100));
        head.passed(at(12));
        assert_eq!(head.start(), at(12) - chrono::Duration::milliseconds(100));
    }

    #[test]
    fn a_head_reads_everything_again_once_per_period() {
        let mut head = Head::new(Duration::ZERO);
        head.passed(at(10));
        assert_eq!(head.start(), DateTime::UNIX_EPOCH, "the period is over");
        head.passed(at(20));
        assert_eq!(head.start(), DateTime::UNIX_EPOCH);
    }
}
