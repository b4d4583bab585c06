//! The health relay's cursor: the last registry health event stored as
//! notifications, held by one replica at a time.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::health_relay;
use crate::domain::DispatchError;

/// The cursor, locked until the transaction ends; `None` when another
/// replica holds it (that replica is relaying).
pub(crate) async fn take(conn: &mut AsyncPgConnection) -> Result<Option<i64>, DispatchError> {
    Ok(health_relay::table
        .select(health_relay::after_id)
        .for_update()
        .skip_locked()
        .first(conn)
        .await
        .optional()?)
}

/// Moves the cursor to `after`.
pub(crate) async fn advance(conn: &mut AsyncPgConnection, after: i64) -> Result<(), DispatchError> {
    diesel::update(health_relay::table)
        .set(health_relay::after_id.eq(after))
        .execute(conn)
        .await?;
    Ok(())
}
