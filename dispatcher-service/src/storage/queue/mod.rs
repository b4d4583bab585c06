//! The delivery queue, shared by every dispatcher replica.
//!
//! - **Claim**: one statement takes up to N due deliveries from the
//!   **cursor**, the exact (due, id) place in the due index where the last
//!   claim of any replica stopped, moves the cursor past them, and writes
//!   one `claims` row for the batch: its token, the end of its lease, and
//!   its deliveries. It writes no delivery row: a write per row (a new
//!   version and an entry in each index) costs about as much as the
//!   completion after it ([decision 5](../../../../docs/decisions/0005-claims-read-from-a-shared-cursor.md)).
//!   Replicas take the cursor's row lock in turn, so their batches never
//!   overlap.
//! - **Sweep**: what lies behind the cursor is either in a live batch (in
//!   flight) or waits for a sweep, which takes it into a batch of its own
//!   and, since it can no longer be told apart by its place, writes that
//!   batch's token on each row it takes. Rows come to lie behind the
//!   cursor unclaimed when their transaction commits after a claim has
//!   moved past their due time (`now()` is the transaction's start): a
//!   publish, a redelivery, or an outcome written with a clock behind the
//!   database's. A batch whose lease ended (its worker died or stalled) is
//!   deleted by the sweep, and its deliveries still pending are taken
//!   again. Each dispatcher sweeps everything behind the cursor once per
//!   poll interval, and the stretch from a late publish's due time when
//!   its `NOTIFY` arrives after this dispatcher's claims passed that time.
//! - **Complete**: one statement writes a batch of outcomes, each only
//!   where the delivery is still as its claim found it and the claim
//!   itself still stands (see [`Hold`]). A
//!   worker whose lease ended and whose deliveries were taken over writes
//!   nothing (fencing), so it cannot overwrite the outcome of the worker
//!   that took over; nor can an outcome written twice (a retried write)
//!   count twice. The statement also deletes the `claims` rows of batches
//!   whose last outcome it writes.
//!
//! Each runs on a [`QueueConnection`] of its own, whose session keeps its
//! plan on the queue's indexes whatever the tables' statistics say (see
//! [`Role`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, Bool, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::{QueryableByName, sql_types};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

mod session;

pub use session::{QueueConnection, Role};

use super::{Prepared, storable};
use crate::domain::queue::{Claim, Hold, Outcome};
use crate::domain::{DispatchError, FailureKind};

/// A [`Hold`] as the claim and sweep statements answer it.
#[derive(QueryableByName)]
struct HoldRow {
    #[diesel(sql_type = SqlUuid)]
    lease_token: Uuid,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    was_due: Option<DateTime<Utc>>,
    #[diesel(sql_type = Bool)]
    batch: bool,
}

/// A [`Claim`] as the claim and sweep statements answer it.
#[derive(QueryableByName)]
struct ClaimRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(embed)]
    hold: HoldRow,
    #[diesel(sql_type = SqlUuid)]
    event_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    partner_id: Uuid,
    #[diesel(sql_type = Int4)]
    notification_type: i32,
    #[diesel(sql_type = Int4)]
    attempt_count: i32,
    #[diesel(sql_type = Int4)]
    series_attempts: i32,
    #[diesel(sql_type = Bool)]
    is_test: bool,
    #[diesel(sql_type = sql_types::Bytea, deserialize_as = Vec<u8>)]
    payload: bytes::Bytes,
    #[diesel(sql_type = Nullable<Text>)]
    trace_context: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    ordering_key: Option<String>,
}

impl From<ClaimRow> for Claim {
    fn from(row: ClaimRow) -> Self {
        Self {
            id: row.id,
            hold: Hold {
                token: row.hold.lease_token,
                was_due: row.hold.was_due,
                batch: row.hold.batch,
            },
            event_id: row.event_id,
            partner_id: row.partner_id,
            notification_type: row.notification_type,
            attempt_count: row.attempt_count,
            series_attempts: row.series_attempts,
            is_test: row.is_test,
            payload: row.payload,
            trace_context: row.trace_context,
            ordering_key: row.ordering_key,
        }
    }
}

/// The claim statement: up to `$1` due deliveries after the cursor, in
/// (due, id) order, as the batch `$3` leased for `$2` milliseconds.
///
/// - The cursor's row lock keeps replicas' claims apart. A claim that
///   waited for it reads the deliveries as they were when it began, but
///   only after the cursor as the other claim left it: it cannot take
///   what that claim took, and what committed meanwhile behind the rows it
///   takes is left to a sweep.
/// - A delivery handed off at publish carries its token until its lease
///   ends (it is due only then); one taken here had its holder die or
///   stall, and loses the token, so that the holder's outcome is fenced
///   off. If the holder's outcome lands first, the delivery has changed
///   and is left out of the batch.
/// - The cursor's new place comes from an aggregate, not an `ORDER BY`:
///   the session prices sorting out (see [`Role::Claims`]).
pub const CLAIM: &str = "WITH cursor AS MATERIALIZED (
         SELECT due, id FROM queue_cursor FOR UPDATE
     ),
     taken AS MATERIALIZED (
         SELECT id, next_attempt_at, lease_token, event_id, partner_id, notification_type,
                attempt_count, series_attempts, is_test
         FROM deliveries
         WHERE status = 'pending'
           AND (next_attempt_at, id) > ((SELECT due FROM cursor), (SELECT id FROM cursor))
           AND next_attempt_at <= now()
         ORDER BY next_attempt_at, id
         LIMIT $1
     ),
     moved AS (
         UPDATE queue_cursor SET due = last.due, id = last.id
         FROM (SELECT max(next_attempt_at) AS due,
                      (array_agg(id ORDER BY next_attempt_at DESC, id DESC))[1] AS id
               FROM taken) last
         WHERE last.due IS NOT NULL
     ),
     unleased AS (
         UPDATE deliveries d SET lease_token = NULL
         FROM taken t
         WHERE t.lease_token IS NOT NULL AND d.id = t.id AND d.status = 'pending'
           AND d.lease_token = t.lease_token AND d.next_attempt_at = t.next_attempt_at
         RETURNING d.id
     ),
     kept AS MATERIALIZED (
         SELECT * FROM taken
         WHERE lease_token IS NULL OR id IN (SELECT id FROM unleased)
     ),
     batch AS (
         INSERT INTO claims (token, until, ids)
         SELECT $3, now() + make_interval(secs => $2 / 1000.0), array_agg(id) FROM kept
         HAVING count(*) > 0
     )
     SELECT k.id, $3 AS lease_token, k.next_attempt_at AS was_due, true AS batch, k.event_id,
            k.partner_id, k.notification_type, k.attempt_count, k.series_attempts, k.is_test,
            e.payload, e.trace_context, e.ordering_key
     FROM kept k JOIN events e ON e.id = k.event_id";

/// The sweep's statement, run holding the cursor's row lock (so that no
/// claim runs meanwhile and every batch made so far is visible): deletes
/// the batches whose lease ended, and takes up to `$1` due deliveries
/// behind the cursor, from the due time `$4` on, that are in no live
/// batch, as the batch `$3` leased for `$2` milliseconds, writing its token
/// on each. A delivery whose late outcome (from an ended batch) lands
/// first has changed and is left out; one whose outcome is being written
/// (its row locked) is skipped, for the next sweep. Waiting for it instead
/// could deadlock with that completion, which locks its rows in its own
/// order, while the sweep held the cursor and so stalled every claim.
pub const SWEEP: &str = "WITH ended AS (
         DELETE FROM claims WHERE until <= now()
     ),
     held AS (
         SELECT unnest(ids) AS id FROM claims WHERE until > now()
     ),
     found AS MATERIALIZED (
         SELECT id, next_attempt_at, lease_token FROM deliveries
         WHERE status = 'pending'
           AND next_attempt_at >= $4
           AND (next_attempt_at, id) <= ((SELECT due FROM queue_cursor), (SELECT id FROM queue_cursor))
           AND next_attempt_at <= now()
           AND id NOT IN (SELECT id FROM held)
         ORDER BY next_attempt_at, id
         LIMIT $1
         FOR NO KEY UPDATE SKIP LOCKED
     ),
     leased AS (
         UPDATE deliveries d SET lease_token = $3
         FROM found f
         WHERE d.id = f.id AND d.status = 'pending' AND d.next_attempt_at = f.next_attempt_at
           AND d.lease_token IS NOT DISTINCT FROM f.lease_token
         RETURNING d.id, d.event_id, d.partner_id, d.notification_type, d.attempt_count,
                   d.series_attempts, d.is_test
     ),
     batch AS (
         INSERT INTO claims (token, until, ids)
         SELECT $3, now() + make_interval(secs => $2 / 1000.0), array_agg(id) FROM leased
         HAVING count(*) > 0
     )
     SELECT l.id, $3 AS lease_token, NULL::timestamptz AS was_due, true AS batch, l.event_id,
            l.partner_id, l.notification_type, l.attempt_count, l.series_attempts, l.is_test,
            e.payload, e.trace_context, e.ordering_key
     FROM leased l JOIN events e ON e.id = l.event_id";

fn lease_ms(lease: Duration) -> i32 {
    i32::try_from(lease.as_millis()).unwrap_or(i32::MAX)
}

/// Claims up to `limit` due deliveries from the cursor for `lease`.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    limit: u32,
    lease: Duration,
) -> Result<Vec<Claim>, DispatchError> {
    let rows: Vec<ClaimRow> = Prepared(
        diesel::sql_query(CLAIM)
            .bind::<Int4, _>(i32::try_from(limit).unwrap_or(i32::MAX))
            .bind::<Int4, _>(lease_ms(lease))
            .bind::<SqlUuid, _>(Uuid::new_v4()),
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(Claim::from).collect())
}

/// Takes up to `limit` deliveries due from `from` on that lie behind the
/// cursor in no live batch, for `lease` (see [`SWEEP`]).
pub async fn sweep(
    conn: &mut AsyncPgConnection,
    limit: u32,
    lease: Duration,
    from: DateTime<Utc>,
) -> Result<Vec<Claim>, DispatchError> {
    let rows: Vec<ClaimRow> = conn
        .transaction::<_, DispatchError, _>(async |conn| {
            // A statement of its own: the sweep's must see every batch that
            // committed while this one waited for the lock.
            diesel::sql_query("SELECT 1 FROM queue_cursor FOR UPDATE")
                .execute(conn)
                .await?;
            Ok(Prepared(
                diesel::sql_query(SWEEP)
                    .bind::<Int4, _>(i32::try_from(limit).unwrap_or(i32::MAX))
                    .bind::<Int4, _>(lease_ms(lease))
                    .bind::<SqlUuid, _>(Uuid::new_v4())
                    .bind::<Timestamptz, _>(from),
            )
            .load(conn)
            .await?)
        })
        .await?;
    Ok(rows.into_iter().map(Claim::from).collect())
}

#[derive(QueryableByName)]
struct Applied {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    token: Uuid,
}

/// The completion statement: a batch of outcomes as twelve arrays (see
/// [`complete`]), each written only under its [`Hold`], with an attempt
/// row for each attempt made; and the `claims` rows of the batches `$13`
/// that this write finishes, deleted.
pub const COMPLETE: &str = "WITH input AS (
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::bool[],
                                  $6::text[], $7::uuid[], $8::timestamptz[], $9::int4[], $10::int4[], $11::text[],
                                  $12::timestamptz[], $14::text[])
                 AS t(id, token, status, next_at, counted, error, registration_id, started_at,
                      duration_ms, response_status, excerpt, was_due, failure_kind)
         ),
         finished AS (
             DELETE FROM claims WHERE token = ANY($13::uuid[])
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
             -- A token is only ever on a pending row. (The status test
             -- stays inside the CASE: as a condition of its own, it let
             -- the planner read the whole due index, whose predicate it
             -- matches, instead of finding each row by its key.)
             -- A hold from the cursor also needs its batch's row: a claim
             -- lost in a database crash (its commit was asynchronous) left
             -- none, and the delivery may be claimed again meanwhile.
             WHERE d.id = i.id
               AND CASE WHEN i.was_due IS NULL THEN d.lease_token = i.token
                        ELSE d.status = 'pending' AND d.lease_token IS NULL
                             AND d.next_attempt_at = i.was_due
                             AND EXISTS (SELECT 1 FROM claims c WHERE c.token = i.token) END
             RETURNING d.id, d.attempt_count, i.token, i.counted, i.registration_id, i.started_at,
                       i.duration_ms, i.response_status, i.error, i.excerpt, i.failure_kind
         ),
         -- One row per delivery updated, numbered by the count just raised:
         -- never a conflict, so a plain insert (no ON CONFLICT, whose
         -- speculative insertion cost ~1.7 us a row).
         logged AS (
             INSERT INTO attempts (delivery_id, attempt_number, registration_id, started_at,
                                   duration_ms, response_status, error, response_excerpt,
                                   failure_kind)
             SELECT id, attempt_count, registration_id, started_at, duration_ms,
                    response_status, error, excerpt, failure_kind
             FROM updated
             WHERE counted
         )
         SELECT id, token FROM updated";

/// A batch of outcomes as the completion statement's thirteen arrays.
struct OutcomeColumns {
    ids: Vec<Uuid>,
    tokens: Vec<Uuid>,
    statuses: Vec<String>,
    next_at: Vec<DateTime<Utc>>,
    counted: Vec<bool>,
    errors: Vec<Option<String>>,
    registrations: Vec<Option<Uuid>>,
    started: Vec<DateTime<Utc>>,
    durations: Vec<i32>,
    response_statuses: Vec<Option<i32>>,
    excerpts: Vec<String>,
    was_due: Vec<Option<DateTime<Utc>>>,
    failures: Vec<Option<&'static str>>,
}

impl OutcomeColumns {
    fn of(outcomes: &[Outcome]) -> Self {
        let n = outcomes.len();
        let mut columns = Self {
            ids: Vec::with_capacity(n),
            tokens: Vec::with_capacity(n),
            statuses: Vec::with_capacity(n),
            next_at: Vec::with_capacity(n),
            counted: Vec::with_capacity(n),
            errors: Vec::with_capacity(n),
            registrations: Vec::with_capacity(n),
            started: Vec::with_capacity(n),
            durations: Vec::with_capacity(n),
            response_statuses: Vec::with_capacity(n),
            excerpts: Vec::with_capacity(n),
            was_due: Vec::with_capacity(n),
            failures: Vec::with_capacity(n),
        };
        for o in outcomes {
            columns.ids.push(o.delivery_id);
            columns.tokens.push(o.hold.token);
            columns.was_due.push(o.hold.was_due);
            columns.statuses.push(o.status.as_str().to_owned());
            columns.next_at.push(o.next_attempt_at);
            columns.counted.push(o.attempt.is_some());
            columns.errors.push(o.error.clone().map(storable));
            let attempt = o.attempt.as_ref();
            columns
                .registrations
                .push(attempt.map(|a| a.registration_id));
            columns
                .started
                .push(attempt.map_or(o.next_attempt_at, |a| a.started_at));
            columns.durations.push(attempt.map_or(0, |a| a.duration_ms));
            columns
                .response_statuses
                .push(attempt.and_then(|a| a.response_status));
            columns
                .failures
                .push(attempt.and_then(|a| a.failure).map(FailureKind::code));
            columns.excerpts.push(
                attempt
                    .map(|a| storable(a.response_excerpt.clone()))
                    .unwrap_or_default(),
            );
        }
        columns
    }
}

/// Writes `outcomes` in one statement, deletes the `claims` rows of
/// the `finished` batches, and answers the (delivery, token) pairs whose
/// hold was still theirs; the others were taken over (or written before)
/// and changed nothing. Two outcomes of one delivery (an old claim and
/// its successor) are told apart by their tokens.
pub async fn complete(
    conn: &mut AsyncPgConnection,
    outcomes: &[Outcome],
    finished: &[Uuid],
) -> Result<Vec<(Uuid, Uuid)>, DispatchError> {
    if outcomes.is_empty() && finished.is_empty() {
        return Ok(Vec::new());
    }
    let c = OutcomeColumns::of(outcomes);
    let applied: Vec<Applied> = Prepared(
        diesel::sql_query(COMPLETE)
            .bind::<Array<SqlUuid>, _>(c.ids)
            .bind::<Array<SqlUuid>, _>(c.tokens)
            .bind::<Array<Text>, _>(c.statuses)
            .bind::<Array<Timestamptz>, _>(c.next_at)
            .bind::<Array<Bool>, _>(c.counted)
            .bind::<Array<Nullable<Text>>, _>(c.errors)
            .bind::<Array<Nullable<SqlUuid>>, _>(c.registrations)
            .bind::<Array<Timestamptz>, _>(c.started)
            .bind::<Array<Int4>, _>(c.durations)
            .bind::<Array<Nullable<Int4>>, _>(c.response_statuses)
            .bind::<Array<Text>, _>(c.excerpts)
            .bind::<Array<Nullable<Timestamptz>>, _>(c.was_due)
            .bind::<Array<SqlUuid>, _>(finished)
            .bind::<Array<Nullable<Text>>, _>(c.failures),
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
