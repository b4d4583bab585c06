//! New work announced through Postgres: a publish's transaction `NOTIFY`s
//! [`WAKE_CHANNEL`] with the due time of what it made due, and each
//! dispatcher `LISTEN`s ([`listen`]) to wake its claim loop at once rather
//! than at its next poll.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::DbPool;
use crate::domain::DispatchError;

/// The channel `NOTIFY`d when new work is due, so idle workers wake at once.
/// The payload is the due time of that work (the transaction's `now()`,
/// in microseconds since the epoch): if a worker's claims have already
/// passed it when the notification arrives, the work committed behind
/// the cursor and the worker sweeps for it (see `super::queue`).
pub const WAKE_CHANNEL: &str = "deliveries_due";

/// Notifies [`WAKE_CHANNEL`] when the caller's transaction commits, with
/// its `now()`, the due time of the deliveries it made due.
pub async fn notify_due(conn: &mut diesel_async::AsyncPgConnection) -> Result<(), DispatchError> {
    use diesel_async::RunQueryDsl;
    diesel::sql_query(format!(
        "SELECT pg_notify('{WAKE_CHANNEL}', (extract(epoch FROM now()) * 1000000)::bigint::text)"
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// The due time a [`WAKE_CHANNEL`] payload carries.
pub fn notified_due(payload: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_micros(payload.parse().ok()?)
}

/// `LISTEN`s on [`WAKE_CHANNEL`] until `shutdown`, calling `notified` with
/// each notification's due time (`None` when its payload carries none);
/// reconnects a second after the connection drops. The caller's polling
/// covers any gap.
pub(crate) async fn listen(
    pool: DbPool,
    notified: impl Fn(Option<DateTime<Utc>>),
    shutdown: CancellationToken,
) {
    use diesel_async::RunQueryDsl;
    use futures_util::StreamExt;
    while !shutdown.is_cancelled() {
        let connection = async {
            let mut conn = pool.dedicated_connection().await?;
            diesel::sql_query(format!("LISTEN {WAKE_CHANNEL}"))
                .execute(&mut conn)
                .await?;
            Ok::<_, anyhow::Error>(conn)
        }
        .await;
        match connection {
            Ok(mut conn) => {
                let mut notifications = std::pin::pin!(conn.notifications_stream());
                loop {
                    tokio::select! {
                        next = notifications.next() => match next {
                            Some(Ok(notification)) => notified(notified_due(&notification.payload)),
                            _ => break,
                        },
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, "cannot LISTEN for new deliveries; polling meanwhile")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
