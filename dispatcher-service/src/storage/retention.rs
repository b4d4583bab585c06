//! Retention: events, their deliveries and attempts are removed once the
//! retention period has passed since the delivery's last change (its last
//! attempt, its cancellation), or since the event's publication when it
//! had no subscriber. A pending delivery is never removed, however old.
//!
//! Removal is a `DELETE` a chunk at a time rather than dropping time
//! partitions (decision 11, `docs/decisions/0011-retention-deletes-in-chunks.md`):
//! each chunk is a short transaction that locks only its own rows. The
//! space it frees is reused by later inserts once a `VACUUM` has passed;
//! the housekeeping runs one itself once removals reach a tenth of the
//! table, so the tables stay the size of about one retention period's
//! traffic whether or not autovacuum runs, or keeps up (`bench retention`).

use std::time::Duration;

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Double};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::domain::DispatchError;

/// What one chunk removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, QueryableByName)]
pub(crate) struct Removed {
    #[diesel(sql_type = BigInt)]
    pub(crate) events: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) deliveries: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) attempts: i64,
}

/// Removes up to `$2` expired events with their deliveries and attempts,
/// `$1` seconds being the retention period.
///
/// Events are walked in id order (ids are UUIDv7, so that is publication
/// order, and the primary key serves it without an index of its own) up to
/// the id of the cut-off time; `created_at`, written by the database's
/// clock, decides. Each event and its delivery are locked (`SKIP LOCKED`:
/// another replica's chunk, or a redelivery under way, is left for later)
/// and the delivery's state is read again under the lock, so a delivery
/// made pending again a moment before is kept.
const REMOVE: &str = "WITH cutoff AS (
       SELECT now() - make_interval(secs => $1) AS at
     ), bound AS (
       SELECT (lpad(to_hex(floor(extract(epoch FROM at) * 1000)::bigint), 12, '0')
               || '70000000000000000000')::uuid AS id
       FROM cutoff
     ), unsubscribed AS (
       SELECT e.id, NULL::uuid AS delivery_id FROM events e, bound, cutoff
       WHERE e.id < bound.id AND e.delivery_id IS NULL AND e.created_at < cutoff.at
       ORDER BY e.id LIMIT $2
       FOR UPDATE OF e SKIP LOCKED
     ), delivered AS (
       SELECT e.id, d.id AS delivery_id FROM events e
       JOIN deliveries d ON d.id = e.delivery_id, bound, cutoff
       WHERE e.id < bound.id AND e.created_at < cutoff.at
         AND d.status <> 'pending' AND d.completed_at < cutoff.at
       ORDER BY e.id LIMIT $2
       FOR UPDATE OF e, d SKIP LOCKED
     ), doomed AS (
       SELECT * FROM unsubscribed UNION ALL SELECT * FROM delivered
     ), gone_attempts AS (
       DELETE FROM attempts a USING doomed WHERE a.delivery_id = doomed.delivery_id
       RETURNING 1
     ), gone_deliveries AS (
       DELETE FROM deliveries d USING doomed WHERE d.id = doomed.delivery_id
       RETURNING 1
     ), gone_events AS (
       DELETE FROM events e USING doomed WHERE e.id = doomed.id
       RETURNING 1
     )
     SELECT (SELECT count(*) FROM gone_events) AS events,
            (SELECT count(*) FROM gone_deliveries) AS deliveries,
            (SELECT count(*) FROM gone_attempts) AS attempts";

/// Removes finished recovery jobs older than `$1` seconds (their lists are
/// empty by then).
const REMOVE_RECOVERIES: &str = "DELETE FROM recoveries
     WHERE state = 'done' AND finished_at < now() - make_interval(secs => $1)";

/// Removes one chunk of what `retention` has let go: up to `chunk` events
/// of each kind (with a subscriber, without), with their deliveries and
/// attempts, and the recovery jobs finished that long ago.
pub(crate) async fn remove_expired(
    conn: &mut AsyncPgConnection,
    retention: Duration,
    chunk: i64,
) -> Result<Removed, DispatchError> {
    let secs = retention.as_secs_f64();
    let removed = diesel::sql_query(REMOVE)
        .bind::<Double, _>(secs)
        .bind::<BigInt, _>(chunk)
        .get_result::<Removed>(conn)
        .await?;
    diesel::sql_query(REMOVE_RECOVERIES)
        .bind::<Double, _>(secs)
        .execute(conn)
        .await?;
    Ok(removed)
}

/// Vacuums the tables retention removes from, so that the space the
/// removals freed is reused; a table another session is vacuuming (another
/// replica, autovacuum) is skipped.
pub(crate) async fn vacuum(conn: &mut AsyncPgConnection) -> Result<(), DispatchError> {
    diesel::sql_query("VACUUM (SKIP_LOCKED) events, deliveries, attempts")
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Estimate {
    #[diesel(sql_type = Double)]
    rows: f64,
}

/// The planner's estimate of how many events are stored (no count: a scan
/// of the table); 0 before the table was first vacuumed or analysed.
pub(crate) async fn estimated_events(conn: &mut AsyncPgConnection) -> Result<f64, DispatchError> {
    let estimate: Estimate = diesel::sql_query(
        "SELECT greatest(reltuples, 0)::float8 AS rows FROM pg_class WHERE oid = 'events'::regclass",
    )
    .get_result(conn)
    .await?;
    Ok(estimate.rows)
}
