//! The dispatcher replicas alive: each writes a heartbeat on the
//! database's clock and reads who else is there, so that it can take its
//! share of each endpoint's limit (see `delivery::fleet`).

use std::time::Duration;

use diesel::QueryableByName;
use diesel::sql_types::{Double, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::domain::DispatchError;

#[derive(QueryableByName)]
struct Replica {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// Records that `id` is alive now.
pub(crate) async fn heartbeat(conn: &mut AsyncPgConnection, id: Uuid) -> Result<(), DispatchError> {
    diesel::sql_query(
        "INSERT INTO dispatcher_replicas (id, seen_at) VALUES ($1, clock_timestamp())
         ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
    )
    .bind::<SqlUuid, _>(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The replicas seen within `within`, by id; and forgets those not seen
/// for ten times as long.
pub(crate) async fn alive(
    conn: &mut AsyncPgConnection,
    within: Duration,
) -> Result<Vec<Uuid>, DispatchError> {
    let seconds = within.as_secs_f64();
    diesel::sql_query(
        "DELETE FROM dispatcher_replicas
         WHERE seen_at < clock_timestamp() - make_interval(secs => $1 * 10)",
    )
    .bind::<Double, _>(seconds)
    .execute(conn)
    .await?;
    let rows: Vec<Replica> = diesel::sql_query(
        "SELECT id FROM dispatcher_replicas
         WHERE seen_at >= clock_timestamp() - make_interval(secs => $1)
         ORDER BY id",
    )
    .bind::<Double, _>(seconds)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Takes `id` off the list (at shutdown), so that the others take up its
/// share at once instead of after its heartbeat expires.
pub(crate) async fn leave(conn: &mut AsyncPgConnection, id: Uuid) -> Result<(), DispatchError> {
    diesel::sql_query("DELETE FROM dispatcher_replicas WHERE id = $1")
        .bind::<SqlUuid, _>(id)
        .execute(conn)
        .await?;
    Ok(())
}
