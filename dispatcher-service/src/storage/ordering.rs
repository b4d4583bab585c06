//! Ordered delivery: the deliveries of one lane (one ordering key, one
//! registration) are attempted one at a time, in publish order.
//!
//! A delivery published behind another pending one of its lane is stored
//! waiting, due at [`waiting!`], beyond every claim's reach. When the one
//! ahead ends (delivered, failed, cancelled), [`promote`] makes the next
//! one due, by `ordering_seq`. The unordered path is left as it was, but
//! for the claim reading the event's key: no statement of the completion
//! or of an unordered publish changes.
//!
//! Publishers and promotions take the lane's advisory lock (every
//! transaction takes its lanes' locks at once, in one order, so no two wait
//! for each other) and look at the lane only in a statement after it: the
//! one that comes second sees what the first committed. A publisher draws
//! its places in the lane under the lock, so their order is the order in
//! which publishes were acknowledged. A promotion lost to a crash after the
//! outcome's commit is made up by [`stalled_lanes`], which the housekeeping
//! runs.

use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Int4, Text, Uuid as SqlUuid};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::domain::DispatchError;
use crate::domain::queue::Lane;

/// The due time of a delivery waiting for the one ahead of it in its lane,
/// as SQL: later than any retry, and within what chrono reads back.
macro_rules! waiting {
    () => {
        "'9999-12-31 00:00:00+00'::timestamptz"
    };
}
pub(crate) use waiting;

/// [`waiting!`] as a time: a due time from it on means "waiting".
pub(crate) fn is_waiting(due: chrono::DateTime<chrono::Utc>) -> bool {
    use chrono::Datelike as _;
    due.year() >= 9999
}

/// Locks the lanes `$1`/`$2`/`$3` (partners, types, keys) until the
/// transaction ends, in the order of their hash.
const LOCK_LANES: &str = "SELECT count(pg_advisory_xact_lock(lane)) AS n FROM (
       SELECT DISTINCT hashtextextended(p::text || '/' || t::text || '/' || k, 0) AS lane
       FROM unnest($1::uuid[], $2::int4[], $3::text[]) AS u(p, t, k)
       ORDER BY 1
     ) lanes";

/// Locks `lanes` until the transaction ends.
pub(crate) async fn lock_lanes<'a>(
    conn: &mut AsyncPgConnection,
    lanes: impl Iterator<Item = &'a Lane>,
) -> Result<(), DispatchError> {
    let (mut partners, mut types, mut keys) = (Vec::new(), Vec::new(), Vec::new());
    for lane in lanes {
        partners.push(lane.partner_id);
        types.push(lane.notification_type);
        keys.push(lane.key.as_str());
    }
    diesel::sql_query(LOCK_LANES)
        .bind::<Array<SqlUuid>, _>(partners)
        .bind::<Array<Int4>, _>(types)
        .bind::<Array<Text>, _>(keys)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Place {
    #[diesel(sql_type = BigInt)]
    place: i64,
}

/// Draws `n` places in the lanes, ascending: called under the lanes'
/// locks, so a later publish of a lane draws a later place.
pub(crate) async fn places(
    conn: &mut AsyncPgConnection,
    n: usize,
) -> Result<Vec<i64>, DispatchError> {
    let rows: Vec<Place> = diesel::sql_query(
        "SELECT nextval('deliveries_ordering_seq') AS place FROM generate_series(1, $1) ORDER BY 1",
    )
    .bind::<Int4, _>(i32::try_from(n).unwrap_or(i32::MAX))
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|p| p.place).collect())
}

/// Makes the first waiting delivery of each lane `$1`/`$2`/`$3` due, where
/// no delivery of the lane is due or in flight; answers how many.
const PROMOTE: &str = concat!(
    "WITH lanes AS (
       SELECT DISTINCT p, t, k FROM unnest($1::uuid[], $2::int4[], $3::text[]) AS u(p, t, k)
     ), next AS (
       SELECT DISTINCT ON (w.partner_id, w.notification_type, w.ordering_key) w.id
       FROM deliveries w JOIN lanes l
         ON w.partner_id = l.p AND w.notification_type = l.t AND w.ordering_key = l.k
       WHERE w.status = 'pending' AND w.next_attempt_at = ",
    waiting!(),
    "
         AND NOT EXISTS (
           SELECT 1 FROM deliveries a
           WHERE a.partner_id = l.p AND a.notification_type = l.t AND a.ordering_key = l.k
             AND a.status = 'pending' AND a.next_attempt_at < ",
    waiting!(),
    ")
       ORDER BY w.partner_id, w.notification_type, w.ordering_key, w.ordering_seq
     )
     UPDATE deliveries d SET next_attempt_at = now(), updated_at = now()
     FROM next WHERE d.id = next.id"
);

/// Gives each of `lanes` its next turn, if the delivery ahead has ended:
/// one transaction, under the lanes' locks; then wakes the workers.
pub(crate) async fn promote(
    conn: &mut AsyncPgConnection,
    lanes: &[Lane],
) -> Result<usize, DispatchError> {
    if lanes.is_empty() {
        return Ok(0);
    }
    let promoted = conn
        .transaction::<_, DispatchError, _>(async |conn| {
            lock_lanes(conn, lanes.iter()).await?;
            Ok(diesel::sql_query(PROMOTE)
                .bind::<Array<SqlUuid>, _>(lanes.iter().map(|l| l.partner_id).collect::<Vec<_>>())
                .bind::<Array<Int4>, _>(
                    lanes
                        .iter()
                        .map(|l| l.notification_type)
                        .collect::<Vec<_>>(),
                )
                .bind::<Array<Text>, _>(lanes.iter().map(|l| l.key.as_str()).collect::<Vec<_>>())
                .execute(conn)
                .await?)
        })
        .await?;
    if promoted > 0 {
        super::notify_due(conn).await?;
    }
    Ok(promoted)
}

#[derive(QueryableByName)]
struct LaneRow {
    #[diesel(sql_type = SqlUuid)]
    partner_id: Uuid,
    #[diesel(sql_type = Int4)]
    notification_type: i32,
    #[diesel(sql_type = Text)]
    ordering_key: String,
}

/// Up to `limit` lanes whose deliveries wait with none ahead of them due
/// or in flight: a promotion was lost (a crash between an outcome's commit
/// and the promotion), or the one ahead was cancelled by an erasure.
///
/// The lanes' index is walked one lane at a time (a skip scan: each step
/// the lane's first pending delivery, then the next lane's), so a look
/// costs a probe per lane, not per waiting delivery. A lane whose first
/// pending delivery waits has nothing ahead of it.
pub(crate) async fn stalled_lanes(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> Result<Vec<Lane>, DispatchError> {
    let rows: Vec<LaneRow> = diesel::sql_query(concat!(
        "WITH RECURSIVE heads AS (
           (SELECT partner_id, notification_type, ordering_key, next_attempt_at FROM deliveries
            WHERE ordering_key IS NOT NULL AND status = 'pending'
            ORDER BY partner_id, notification_type, ordering_key, ordering_seq LIMIT 1)
           UNION ALL
           SELECT n.* FROM heads h, LATERAL (
             SELECT partner_id, notification_type, ordering_key, next_attempt_at FROM deliveries d
             WHERE d.ordering_key IS NOT NULL AND d.status = 'pending'
               AND (d.partner_id, d.notification_type, d.ordering_key)
                   > (h.partner_id, h.notification_type, h.ordering_key)
             ORDER BY partner_id, notification_type, ordering_key, ordering_seq LIMIT 1) n
         )
         SELECT partner_id, notification_type, ordering_key FROM heads
         WHERE next_attempt_at = ",
        waiting!(),
        "
         LIMIT $1"
    ))
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Lane {
            partner_id: r.partner_id,
            notification_type: r.notification_type,
            key: r.ordering_key,
        })
        .collect())
}
