//! Writing published events, with their deliveries, in one transaction.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::Prepared;
use std::collections::HashSet;

use super::models::NewEvent;
use super::schema::events;
use crate::domain::DispatchError;
pub use crate::domain::delivery::Stored;
use crate::domain::queue::Lane;

#[derive(diesel::QueryableByName)]
struct InsertedId {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

/// The insert of a batch of events with their deliveries, with `$on_conflict`
/// between the events' insert and its `RETURNING`.
macro_rules! insert_statement {
    ($on_conflict:literal) => {
        concat!(
            "WITH input AS (
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int4[], $4::bytea[], $5::text[], $6::bool[],
                                  $7::bool[], $8::timestamptz[], $9::text[], $10::uuid[], $11::uuid[],
                                  $12::int4[])
                 AS t(id, partner_id, notification_type, payload, idempotency_key, is_test,
                      has_subscriber, occurred_at, trace_context, delivery_id, lease_token, lease_ms)
         ),
         inserted AS (
             INSERT INTO events (id, partner_id, notification_type, payload, idempotency_key, is_test,
                                 has_subscriber, occurred_at, trace_context, delivery_id)
             SELECT id, partner_id, notification_type, payload, idempotency_key, is_test,
                    has_subscriber, occurred_at, trace_context, delivery_id
             FROM input ",
            $on_conflict,
            "
             RETURNING id
         ),
         scheduled AS (
             INSERT INTO deliveries (id, event_id, partner_id, notification_type, is_test,
                                     lease_token, next_attempt_at)
             SELECT i.delivery_id, i.id, i.partner_id, i.notification_type, i.is_test,
                    i.lease_token,
                    CASE WHEN i.lease_token IS NULL THEN now()
                         ELSE now() + make_interval(secs => i.lease_ms / 1000.0) END
             FROM input i JOIN inserted USING (id)
             WHERE i.delivery_id IS NOT NULL
         )
         SELECT id FROM inserted"
        )
    };
}

/// Events with an idempotency key: one whose key was used is skipped.
const INSERT_KEYED: &str = insert_statement!("ON CONFLICT DO NOTHING");

/// Events without a key, which cannot conflict (their ids are minted here):
/// a plain insert. `ON CONFLICT` makes every row a speculative insertion,
/// which costs a sixth of Postgres's CPU per event in `bench ingest`
/// (docs/benchmarks.md, "What moved the numbers").
const INSERT_UNKEYED: &str = insert_statement!("");

/// Events with an ordering key (and maybe an idempotency key): each
/// delivery takes its place `$10` in its lane, and waits if it is `$11`
/// behind another of this batch or if its lane has a pending delivery
/// already. Run under the lanes' locks (`storage::ordering`).
const INSERT_ORDERED: &str = concat!(
    "WITH input AS (
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int4[], $4::bytea[], $5::text[],
                              $6::timestamptz[], $7::text[], $8::uuid[], $9::text[], $10::int8[],
                              $11::bool[])
             AS t(id, partner_id, notification_type, payload, idempotency_key, occurred_at,
                  trace_context, delivery_id, ordering_key, ordering_seq, behind)
     ),
     inserted AS (
         INSERT INTO events (id, partner_id, notification_type, payload, idempotency_key, is_test,
                             has_subscriber, occurred_at, trace_context, delivery_id, ordering_key)
         SELECT id, partner_id, notification_type, payload, idempotency_key, false,
                delivery_id IS NOT NULL, occurred_at, trace_context, delivery_id, ordering_key
         FROM input
         ON CONFLICT DO NOTHING
         RETURNING id
     ),
     scheduled AS (
         INSERT INTO deliveries (id, event_id, partner_id, notification_type, next_attempt_at,
                                 ordering_key, ordering_seq)
         SELECT i.delivery_id, i.id, i.partner_id, i.notification_type,
                CASE WHEN i.behind OR EXISTS (
                       SELECT 1 FROM deliveries d
                       WHERE d.partner_id = i.partner_id AND d.notification_type = i.notification_type
                         AND d.ordering_key = i.ordering_key AND d.status = 'pending')
                     THEN ",
    super::ordering::waiting!(),
    " ELSE now() END,
                i.ordering_key, i.ordering_seq
         FROM input i JOIN inserted USING (id)
         WHERE i.delivery_id IS NOT NULL
     )
     SELECT id FROM inserted"
);

/// Stores `new` events and a delivery for each that has a subscriber, then
/// wakes the workers; all in the caller's transaction, so nothing is
/// visible (or delivered) before it commits. Events whose idempotency key
/// was used before are not stored again: their first event is answered.
/// A delivery whose event carries a [`Lease`](super::models::Lease) is
/// stored under it, for this process to attempt without a claim.
///
/// One statement for the events with an idempotency key and one for those
/// without, each for any number of events: the rows travel as arrays and
/// `unnest` turns them back into rows, so Postgres parses and plans one
/// small statement (prepared once per connection, see [`Prepared`])
/// instead of a `VALUES` list as long as the batch, and events and
/// deliveries go in together.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    new: &[NewEvent],
) -> Result<Vec<Stored>, DispatchError> {
    let delivery_ids: Vec<Option<Uuid>> = new
        .iter()
        .map(|e| e.has_subscriber.then(Uuid::now_v7))
        .collect();
    let (ordered, unordered): (Vec<_>, Vec<_>) = new
        .iter()
        .zip(&delivery_ids)
        .partition(|(e, _)| e.ordering_key.is_some());
    let (keyed, unkeyed): (Vec<_>, Vec<_>) = unordered
        .into_iter()
        .partition(|(e, _)| e.idempotency_key.is_some());
    let mut inserted = HashSet::with_capacity(new.len());
    if !ordered.is_empty() {
        inserted.extend(insert_ordered(conn, ordered).await?);
    }
    for (statement, events) in [(INSERT_KEYED, keyed), (INSERT_UNKEYED, unkeyed)] {
        if !events.is_empty() {
            inserted.extend(insert_rows(conn, statement, &events).await?);
        }
    }
    let mut results = Vec::with_capacity(new.len());
    // Wake the workers only for deliveries left for a claim.
    let mut scheduled = false;
    for (event, delivery_id) in new.iter().zip(delivery_ids) {
        if inserted.contains(&event.id) {
            scheduled |= delivery_id.is_some() && event.lease.is_none();
            results.push(Stored {
                event_id: event.id,
                delivery_id,
                duplicate: false,
            });
        } else {
            results.push(first_of_key(conn, event).await?);
        }
    }
    if scheduled {
        super::notify_due(conn).await?;
    }
    Ok(results)
}

/// One column of `events`, for an `unnest` parameter.
fn column<T>(events: &[(&NewEvent, &Option<Uuid>)], f: impl Fn(&NewEvent) -> T) -> Vec<T> {
    events.iter().map(|(e, _)| f(e)).collect()
}

/// The events' payloads, borrowed (not copied) for the `bytea[]` parameter.
fn payloads<'a>(events: &[(&'a NewEvent, &Option<Uuid>)]) -> Vec<&'a [u8]> {
    events.iter().map(|(e, _)| e.payload.as_ref()).collect()
}

/// Inserts events with an ordering key, given in publish order: locks
/// their lanes, draws their places in that order, and marks each behind an
/// earlier one of its lane in this batch; answers the ids of the events
/// inserted.
async fn insert_ordered(
    conn: &mut AsyncPgConnection,
    events: Vec<(&NewEvent, &Option<Uuid>)>,
) -> Result<Vec<Uuid>, DispatchError> {
    use diesel::sql_types::{Array, Bool, Bytea, Int4, Int8, Nullable, Text, Timestamptz};
    let lanes: Vec<Option<Lane>> = events
        .iter()
        .map(|(e, delivery)| {
            delivery.and(e.ordering_key.clone()).map(|key| Lane {
                partner_id: e.partner_id,
                notification_type: e.notification_type,
                key,
            })
        })
        .collect();
    super::ordering::lock_lanes(conn, lanes.iter().flatten()).await?;
    let mut places = super::ordering::places(conn, events.len())
        .await?
        .into_iter();
    let mut seen = HashSet::new();
    let behind: Vec<bool> = lanes
        .iter()
        .map(|lane| lane.as_ref().is_some_and(|lane| !seen.insert(lane)))
        .collect();
    Ok(diesel::sql_query(INSERT_ORDERED)
        .bind::<Array<diesel::sql_types::Uuid>, _>(column(&events, |e| e.id))
        .bind::<Array<diesel::sql_types::Uuid>, _>(column(&events, |e| e.partner_id))
        .bind::<Array<Int4>, _>(column(&events, |e| e.notification_type))
        .bind::<Array<Bytea>, _>(payloads(&events))
        .bind::<Array<Nullable<Text>>, _>(column(&events, |e| e.idempotency_key.clone()))
        .bind::<Array<Timestamptz>, _>(column(&events, |e| e.occurred_at))
        .bind::<Array<Nullable<Text>>, _>(column(&events, |e| e.trace_context.clone()))
        .bind::<Array<Nullable<diesel::sql_types::Uuid>>, _>(
            events.iter().map(|(_, id)| **id).collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Text>>, _>(column(&events, |e| e.ordering_key.clone()))
        .bind::<Array<Int8>, _>(
            events
                .iter()
                .map(|_| places.next().unwrap_or(0))
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Bool>, _>(behind)
        .load::<InsertedId>(conn)
        .await?
        .into_iter()
        .map(|row| row.id)
        .collect())
}

/// Runs one of the insert statements for `events` (each with its delivery's
/// id, if it has one); answers the ids of the events inserted.
async fn insert_rows(
    conn: &mut AsyncPgConnection,
    statement: &'static str,
    events: &[(&NewEvent, &Option<Uuid>)],
) -> Result<Vec<Uuid>, DispatchError> {
    use diesel::sql_types::{Array, Bool, Bytea, Int4, Nullable, Text, Timestamptz};
    Ok(Prepared(
        diesel::sql_query(statement)
            .bind::<Array<diesel::sql_types::Uuid>, _>(column(events, |e| e.id))
            .bind::<Array<diesel::sql_types::Uuid>, _>(column(events, |e| e.partner_id))
            .bind::<Array<Int4>, _>(column(events, |e| e.notification_type))
            .bind::<Array<Bytea>, _>(payloads(events))
            .bind::<Array<Nullable<Text>>, _>(column(events, |e| e.idempotency_key.clone()))
            .bind::<Array<Bool>, _>(column(events, |e| e.is_test))
            .bind::<Array<Bool>, _>(column(events, |e| e.has_subscriber))
            .bind::<Array<Timestamptz>, _>(column(events, |e| e.occurred_at))
            .bind::<Array<Nullable<Text>>, _>(column(events, |e| e.trace_context.clone()))
            .bind::<Array<Nullable<diesel::sql_types::Uuid>>, _>(
                events.iter().map(|(_, id)| **id).collect::<Vec<_>>(),
            )
            .bind::<Array<Nullable<diesel::sql_types::Uuid>>, _>(column(events, |e| {
                e.lease.map(|l| l.token)
            }))
            .bind::<Array<Nullable<Int4>>, _>(column(events, |e| {
                e.lease
                    .map(|l| i32::try_from(l.length.as_millis()).unwrap_or(i32::MAX))
            })),
    )
    .load::<InsertedId>(conn)
    .await?
    .into_iter()
    .map(|row| row.id)
    .collect())
}

/// The event (and delivery) an earlier publish with the same key made.
pub(super) async fn first_of_key(
    conn: &mut AsyncPgConnection,
    event: &NewEvent,
) -> Result<Stored, DispatchError> {
    let Some(key) = &event.idempotency_key else {
        return Err(DispatchError::internal(format!(
            "event {} without an idempotency key conflicted",
            event.id
        )));
    };
    let (event_id, delivery_id): (Uuid, Option<Uuid>) = events::table
        .filter(events::partner_id.eq(event.partner_id))
        .filter(events::idempotency_key.eq(key))
        .select((events::id, events::delivery_id))
        .first(conn)
        .await?;
    Ok(Stored {
        event_id,
        delivery_id,
        duplicate: true,
    })
}
