//! Postgres through diesel-async: the durable event log, the delivery queue
//! and the attempt log. `queue.rs` holds the hot path (claim, sweep,
//! complete); `events.rs` and `deliveries.rs` the rest.

pub(crate) mod clock;
pub(crate) mod commit;
pub(crate) mod deliveries;
pub(crate) mod endpoint_limits;
pub(crate) mod erasure;
pub mod events;
pub(crate) mod health_relay;
pub(crate) mod idempotency;
pub mod models;
pub(crate) mod notifications;
pub(crate) mod ordering;
pub mod queue;
pub(crate) mod recoveries;
pub(crate) mod replicas;
pub(crate) mod resolve;
pub(crate) mod retention;
pub mod schema;

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::Error as DieselError;
use diesel_async::pooled_connection::bb8::RunError;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
pub use notifications::{WAKE_CHANNEL, notified_due, notify_due};
pub use service_kit::db::DbPool;

use crate::domain::DispatchError;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// `text` as Postgres stores it. A `text` value cannot hold the NUL
/// character (the server refuses the whole statement), and what an
/// endpoint answers may hold any byte: each NUL becomes U+FFFD, as an
/// invalid UTF-8 sequence already has when the body was read.
pub fn storable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

pub async fn connect(database_url: &str, pool_size: u32) -> anyhow::Result<DbPool> {
    service_kit::db::connect(database_url, pool_size, MIGRATIONS).await
}

impl From<DieselError> for DispatchError {
    fn from(e: DieselError) -> Self {
        DispatchError::internal(e)
    }
}

impl From<RunError> for DispatchError {
    fn from(e: RunError) -> Self {
        DispatchError::internal(e)
    }
}

/// A statement of constant text, run as a prepared statement that each
/// connection parses and plans once.
///
/// diesel never caches `sql_query` (its text could have been built from
/// input), so each call costs a parse, a plan and an extra round trip: for a
/// claim of 128 the plan alone took about 0.8 ms. Ours are string constants
/// with every value bound, which makes caching them safe.
#[derive(Debug)]
pub struct Prepared<Q>(pub Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _: &Pg) -> diesel::QueryResult<bool> {
        Ok(true)
    }
}

/// Cached by its text: no static id.
impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

/// Whether the database answers (readiness).
pub async fn ping(pool: &DbPool) -> bool {
    use diesel_async::RunQueryDsl;
    match pool.get().await {
        Ok(mut conn) => diesel::sql_query("SELECT 1")
            .execute(&mut conn)
            .await
            .is_ok(),
        Err(_) => false,
    }
}

/// Sets the queue gauges (on scrape): pending deliveries, and how long the
/// oldest due one has waited.
pub async fn refresh_gauges(pool: &DbPool) {
    let depth = async {
        let mut conn = pool.get().await?;
        queue::depth(&mut conn).await
    }
    .await;
    match depth {
        Ok((pending, oldest_due)) => {
            metrics::gauge!("callbacks_queue_pending").set(pending as f64);
            metrics::gauge!("callbacks_queue_oldest_due_seconds").set(oldest_due.unwrap_or(0.0));
        }
        Err(error) => tracing::warn!(error = %error, "cannot measure the queue"),
    }
}

#[cfg(test)]
mod tests {
    use super::storable;

    #[test]
    fn nul_characters_are_replaced_and_other_text_kept() {
        assert_eq!(storable("x\0y\0".into()), "x\u{FFFD}y\u{FFFD}");
        assert_eq!(storable("HTTP 500 — ok".into()), "HTTP 500 — ok");
    }
}
