//! Forgetting idempotency keys once their window has passed: a publish
//! with a forgotten key is a new event.

use std::time::Duration;

use diesel::sql_types::{BigInt, Double};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::domain::DispatchError;

/// Forgets the keys of up to `chunk` events published more than `window`
/// ago, oldest first, skipping rows another replica is forgetting; answers
/// how many.
pub(crate) async fn expire_keys(
    conn: &mut AsyncPgConnection,
    window: Duration,
    chunk: i64,
) -> Result<usize, DispatchError> {
    Ok(diesel::sql_query(
        "UPDATE events SET idempotency_key = NULL
         WHERE id IN (
           SELECT id FROM events
           WHERE idempotency_key IS NOT NULL
             AND created_at < now() - make_interval(secs => $1)
           ORDER BY created_at LIMIT $2
           FOR UPDATE SKIP LOCKED)",
    )
    .bind::<Double, _>(window.as_secs_f64())
    .bind::<BigInt, _>(chunk)
    .execute(conn)
    .await?)
}
