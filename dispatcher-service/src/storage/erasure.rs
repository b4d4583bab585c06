//! Erasing payloads: one event's, or every event's of a partner. The
//! payload becomes empty and the event says when it was erased; its
//! delivery, if still pending, is cancelled in the same transaction (an
//! attempt already under way is fenced off when it writes its outcome:
//! the delivery is no longer as its claim found it). Deliveries and
//! attempts stay, as metadata.

use diesel::sql_types::{BigInt, Nullable, Uuid as SqlUuid};
use diesel::{OptionalExtension as _, QueryableByName};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::domain::DispatchError;

/// How many events an erasure emptied, and how many pending deliveries it
/// cancelled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, QueryableByName)]
pub(crate) struct Erased {
    #[diesel(sql_type = BigInt)]
    pub(crate) events: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) cancelled: i64,
}

/// Empties the payloads the `WHERE` clause picks (`$1` an event or NULL,
/// `$2` a partner or NULL, `$3` the most to take), and cancels their
/// pending deliveries.
const ERASE: &str = "WITH picked AS (
       SELECT id FROM events
       WHERE erased_at IS NULL AND ($1::uuid IS NULL OR id = $1)
         AND ($2::uuid IS NULL OR partner_id = $2)
       LIMIT $3
     ), emptied AS (
       UPDATE events e SET payload = ''::bytea, erased_at = now()
       FROM picked WHERE e.id = picked.id
       RETURNING e.delivery_id
     ), cancelled AS (
       UPDATE deliveries d
       SET status = 'cancelled', last_error = 'payload erased', lease_token = NULL,
           next_attempt_at = now(), completed_at = now(), updated_at = now()
       FROM emptied WHERE d.id = emptied.delivery_id AND d.status = 'pending'
       RETURNING d.id
     )
     SELECT (SELECT count(*) FROM emptied) AS events, (SELECT count(*) FROM cancelled) AS cancelled";

/// Whether event `id` (of `partner`, when given) exists, and whether its
/// payload is erased already.
#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = Nullable<diesel::sql_types::Timestamptz>)]
    erased_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Erases event `id`'s payload; `None` when there is no such event (of
/// `partner`). An event erased before is left as it is (0 emptied).
pub(crate) async fn erase_event(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    partner: Option<Uuid>,
) -> Result<Option<Erased>, DispatchError> {
    conn.transaction(async |conn| {
        let found: Option<Found> = diesel::sql_query(
            "SELECT erased_at FROM events WHERE id = $1 AND ($2::uuid IS NULL OR partner_id = $2) \
             FOR UPDATE",
        )
        .bind::<SqlUuid, _>(id)
        .bind::<Nullable<SqlUuid>, _>(partner)
        .get_result(conn)
        .await
        .optional()?;
        let Some(found) = found else {
            return Ok(None);
        };
        if found.erased_at.is_some() {
            return Ok(Some(Erased::default()));
        }
        erase_chunk(conn, Some(id), partner, 1).await.map(Some)
    })
    .await
}

/// Erases every payload of `partner`, `chunk` events per transaction, so
/// that no transaction holds many rows for long.
pub(crate) async fn erase_partner(
    conn: &mut AsyncPgConnection,
    partner: Uuid,
    chunk: i64,
) -> Result<Erased, DispatchError> {
    let mut total = Erased::default();
    loop {
        let erased = conn
            .transaction(async |conn| erase_chunk(conn, None, Some(partner), chunk).await)
            .await?;
        total.events += erased.events;
        total.cancelled += erased.cancelled;
        if erased.events < chunk {
            return Ok(total);
        }
    }
}

async fn erase_chunk(
    conn: &mut AsyncPgConnection,
    event: Option<Uuid>,
    partner: Option<Uuid>,
    limit: i64,
) -> Result<Erased, DispatchError> {
    Ok(diesel::sql_query(ERASE)
        .bind::<Nullable<SqlUuid>, _>(event)
        .bind::<Nullable<SqlUuid>, _>(partner)
        .bind::<BigInt, _>(limit)
        .get_result(conn)
        .await?)
}
