//! What each replica does in the background besides delivering: forgets
//! idempotency keys whose window has passed, and removes what the
//! retention period has let go. Each job works a chunk per statement, so
//! no transaction is long and replicas share the work (`SKIP LOCKED`);
//! retention vacuums what it removed from once that is a tenth of the table.
//! Apart, it gives their turn to ordered lanes left waiting.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::DispatchError;
use crate::storage::{DbPool, idempotency, ordering, retention};

/// Rows taken per statement.
const CHUNK: i64 = 5_000;

/// The share of the stored events that retention removes before it
/// vacuums: autovacuum's default waits for a fifth of a table, and may be
/// off.
const VACUUM_AFTER_SHARE: f64 = 0.1;

/// How long the background jobs wait for: the idempotency window, and the
/// retention period (`None`: everything is kept).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Housekeeping {
    pub(crate) idempotency_window: Duration,
    pub(crate) retention: Option<Duration>,
}

impl Housekeeping {
    /// How often the jobs run: a quarter of the shorter period, between a
    /// second and a minute, so that nothing outlives its period by much.
    fn every(&self) -> Duration {
        let shortest = self
            .retention
            .map_or(self.idempotency_window, |r| r.min(self.idempotency_window));
        (shortest / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    /// Runs both jobs until `stop`: every [`Self::every`], chunk by chunk
    /// until a chunk comes back short.
    pub(crate) async fn run(self, pool: DbPool, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(self.every());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let forgotten = metrics::counter!("callbacks_idempotency_keys_expired_total");
        let removed = |table: &'static str| metrics::counter!("callbacks_retention_removed_total", "table" => table);
        let (events, deliveries, attempts) = (
            removed("events"),
            removed("deliveries"),
            removed("attempts"),
        );
        let mut unvacuumed = 0;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let window = self.idempotency_window;
            chunks(&pool, &stop, "forget expired idempotency keys", |conn| {
                let forgotten = forgotten.clone();
                Box::pin(async move {
                    let count = idempotency::expire_keys(conn, window, CHUNK).await?;
                    forgotten.increment(count as u64);
                    Ok(count as i64)
                })
            })
            .await;
            let Some(period) = self.retention else {
                continue;
            };
            unvacuumed += chunks(&pool, &stop, "remove expired events", |conn| {
                let (events, deliveries, attempts) =
                    (events.clone(), deliveries.clone(), attempts.clone());
                Box::pin(async move {
                    let gone = retention::remove_expired(conn, period, CHUNK).await?;
                    events.increment(gone.events as u64);
                    deliveries.increment(gone.deliveries as u64);
                    attempts.increment(gone.attempts as u64);
                    Ok(gone.events)
                })
            })
            .await;
            if unvacuumed > 0 {
                unvacuumed = vacuum_when_due(&pool, unvacuumed).await;
            }
        }
    }
}

/// Vacuums once the events removed since the last vacuum reach
/// [`VACUUM_AFTER_SHARE`] of those stored; answers how many removals are
/// left unvacuumed.
async fn vacuum_when_due(pool: &DbPool, unvacuumed: i64) -> i64 {
    let vacuumed = async {
        let mut conn = pool.get().await?;
        let stored = retention::estimated_events(&mut conn).await?;
        if (unvacuumed as f64) < stored * VACUUM_AFTER_SHARE {
            return Ok::<_, DispatchError>(false);
        }
        retention::vacuum(&mut conn).await?;
        Ok(true)
    };
    match vacuumed.await {
        Ok(true) => 0,
        Ok(false) => unvacuumed,
        Err(error) => {
            tracing::warn!(error = %error, "cannot vacuum after removing expired events");
            unvacuumed
        }
    }
}

/// A chunk's work on a connection: how many rows it took.
type Chunk<'c> = std::pin::Pin<Box<dyn Future<Output = Result<i64, DispatchError>> + Send + 'c>>;

/// Runs `job` chunk after chunk while chunks come back full and `stop` has
/// not come; a failure is logged and waits for the next tick. Answers how
/// many rows the chunks took.
async fn chunks<F>(pool: &DbPool, stop: &CancellationToken, what: &str, mut job: F) -> i64
where
    F: for<'c> FnMut(&'c mut diesel_async::AsyncPgConnection) -> Chunk<'c>,
{
    let mut total = 0;
    loop {
        let taken = match pool.get().await {
            Ok(mut conn) => job(&mut conn).await,
            Err(error) => Err(error.into()),
        };
        match taken {
            Ok(count) if count >= CHUNK && !stop.is_cancelled() => total += count,
            Ok(count) => return total + count,
            Err(error) => {
                tracing::warn!(error = %error, "cannot {what}");
                return total;
            }
        }
    }
}

/// How often lanes left waiting with none of theirs ahead are looked for.
const LANE_REPAIR_EVERY: Duration = Duration::from_secs(5);

/// Most lanes given their turn per look.
const LANES_PER_REPAIR: i64 = 1_000;

/// Until `stop`: gives its turn to every lane whose deliveries wait with
/// none ahead of them (`storage::ordering::stalled_lanes`): a promotion lost
/// to a crash, or a delivery ahead cancelled by an erasure.
pub(crate) async fn repair_lanes(pool: DbPool, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(LANE_REPAIR_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let repaired = async {
            let mut conn = pool.get().await?;
            let lanes = ordering::stalled_lanes(&mut conn, LANES_PER_REPAIR).await?;
            ordering::promote(&mut conn, &lanes).await
        };
        match repaired.await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "lanes whose turn had not been given, given it"),
            Err(error) => tracing::warn!(error = %error, "cannot look for stalled lanes"),
        }
    }
}
