//! Recovery in bulk (`domain::recovery`): a dry run, a job and its
//! progress, and the runner that moves the jobs on a chunk at a time.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::domain::{Recovery, RecoveryPlan, RecoveryScope};
use crate::storage::recoveries;

impl Dispatcher {
    /// What a recovery of `scope` would send now: a dry run.
    pub(crate) async fn plan_recovery(
        &self,
        scope: &RecoveryScope,
    ) -> Result<RecoveryPlan, DispatchError> {
        let mut conn = self.pool.get().await?;
        recoveries::plan(&mut conn, scope).await
    }

    /// Makes a recovery job for `scope`; the runners of every replica send
    /// it on, paced (see [`run`]).
    pub(crate) async fn start_recovery(
        &self,
        scope: &RecoveryScope,
    ) -> Result<Recovery, DispatchError> {
        let mut conn = self.pool.get().await?;
        let recovery = recoveries::create(&mut conn, scope).await?;
        tracing::info!(recovery.id = %recovery.id, partner.id = %scope.partner_id, total = recovery.total, "recovery started");
        Ok(recovery)
    }

    /// The job; with `partner`, only if it is theirs.
    pub(crate) async fn get_recovery(
        &self,
        id: Uuid,
        partner: Option<Uuid>,
    ) -> Result<Recovery, DispatchError> {
        let mut conn = self.pool.get().await?;
        recoveries::get(&mut conn, id, partner)
            .await?
            .ok_or(DispatchError::RecoveryNotFound(id))
    }
}

/// Moves the running recovery jobs on until `stop`: once a second, the
/// next `per_second` deliveries of the oldest job no other replica holds
/// are made due again. The pace keeps a large recovery from crowding out
/// fresh deliveries in the queue; the endpoints' own limits then pace the
/// attempts.
pub(crate) async fn run(
    pool: DbPool,
    per_second: u32,
    worker: Option<Arc<Worker>>,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let resent = metrics::counter!("callbacks_recovered_deliveries_total");
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let advanced = match pool.get().await {
            Ok(mut conn) => recoveries::advance(&mut conn, i64::from(per_second)).await,
            Err(error) => Err(error.into()),
        };
        match advanced {
            Ok(Some((id, count, done))) => {
                resent.increment(u64::try_from(count).unwrap_or_default());
                if count > 0
                    && let Some(worker) = &worker
                {
                    worker.wake();
                }
                if done {
                    tracing::info!(recovery.id = %id, "recovery done");
                }
            }
            Ok(None) => {}
            // Tried again on the next tick; the job's transaction left it
            // as it was.
            Err(error) => tracing::warn!(error = %error, "cannot move a recovery on"),
        }
    }
}
