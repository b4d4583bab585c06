//! What each replica does in the background besides delivering: forgets
//! idempotency keys whose window has passed.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::storage::{DbPool, idempotency};

/// Keys forgotten per statement.
const CHUNK: i64 = 5_000;

/// Forgets expired idempotency keys until `stop`: every `every`, chunk by
/// chunk until none is left.
pub(crate) async fn run(pool: DbPool, window: Duration, every: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let forgotten = metrics::counter!("callbacks_idempotency_keys_expired_total");
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        loop {
            let expired = match pool.get().await {
                Ok(mut conn) => idempotency::expire_keys(&mut conn, window, CHUNK).await,
                Err(error) => Err(error.into()),
            };
            match expired {
                Ok(count) => {
                    forgotten.increment(count as u64);
                    if count < CHUNK as usize || stop.is_cancelled() {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %error, "cannot forget expired idempotency keys");
                    break;
                }
            }
        }
    }
}
