//! "Has the registry been asked since then?", shared by every caller.
//!
//! A cache of registry answers is only as current as the last time it
//! learnt the registry's changes. A caller that must act on every change
//! answered before some moment (a delivery claimed then, a request received
//! then) waits for a sync that *started* at or after that moment: the sync
//! then saw every change committed before it.
//!
//! Syncs are shared. A caller is served by any sync that started at or
//! after its moment: one already running if there is one, else a new one.
//! So a caller waits for one sync at most, and at most
//! [`MAX_IN_FLIGHT`] syncs run at once (a caller beyond that waits for the
//! next to end, and starts its own then); under load each sync serves
//! every caller that arrived while the one before it ran. A failed sync
//! fails every caller it would have served, and none starts again until a
//! backoff with jitter has passed (callers meanwhile fail at once), so an
//! outage costs the registry one call per backoff, not one per caller.

use std::hash::{BuildHasher as _, RandomState};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// The most syncs running at once.
pub const MAX_IN_FLIGHT: usize = 4;

/// The first wait after a failed sync, doubled on each failure after it.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Freshness {
    state: Mutex<State>,
    /// Bumped whenever a sync ends.
    ended: watch::Sender<()>,
}

#[derive(Debug, Default)]
struct State {
    /// When the latest successful sync started.
    synced: Option<Instant>,
    /// When each sync in flight started.
    running: Vec<Instant>,
    failed: Option<Failure>,
}

#[derive(Debug, Clone)]
struct Failure {
    started: Instant,
    retry_at: Instant,
    backoff: Duration,
    error: String,
}

impl Freshness {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            ended: watch::Sender::new(()),
        })
    }

    fn state(&self) -> parking_lot::MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Waits until a sync that started at or after `since` has succeeded,
    /// starting `sync` (on a task of its own) when one has to start.
    /// Answers the error of the sync that failed instead, or of the last
    /// one while its backoff runs.
    pub async fn since<F, Fut>(self: &Arc<Self>, since: Instant, sync: F) -> Result<(), String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let mut ended = self.ended.subscribe();
        let mut sync = Some(sync);
        loop {
            {
                let mut state = self.state();
                ended.borrow_and_update();
                if state.synced.is_some_and(|at| at >= since) {
                    return Ok(());
                }
                if let Some(failure) = &state.failed
                    && (failure.started >= since || Instant::now() < failure.retry_at)
                {
                    return Err(failure.error.clone());
                }
                let served = state.running.iter().any(|at| *at >= since);
                if !served
                    && state.running.len() < MAX_IN_FLIGHT
                    && let Some(sync) = sync.take()
                {
                    let started = Instant::now();
                    state.running.push(started);
                    tokio::spawn(self.clone().run(started, sync()));
                }
            }
            if ended.changed().await.is_err() {
                return Err("shutting down".into());
            }
        }
    }

    /// How long the backoff after a failed sync still runs, if it does:
    /// work that needs the registry waits this long rather than fail.
    pub fn backing_off(&self) -> Option<Duration> {
        let state = self.state();
        let retry_at = state.failed.as_ref()?.retry_at;
        retry_at.checked_duration_since(Instant::now())
    }

    async fn run(
        self: Arc<Self>,
        started: Instant,
        sync: impl Future<Output = Result<(), String>>,
    ) {
        // Ends the sync even if this task is dropped mid-way (the runtime
        // shutting down), so that no caller waits for it forever.
        struct Ending(Arc<Freshness>, Option<Result<(), String>>, Instant);
        impl Drop for Ending {
            fn drop(&mut self) {
                let result = self
                    .1
                    .take()
                    .unwrap_or_else(|| Err("sync abandoned".into()));
                self.0.end(self.2, result);
            }
        }
        let mut ending = Ending(self, None, started);
        ending.1 = Some(sync.await);
    }

    fn end(&self, started: Instant, result: Result<(), String>) {
        let mut state = self.state();
        state.running.retain(|at| *at != started);
        match result {
            Ok(()) => {
                state.synced = state.synced.max(Some(started));
                if state.failed.as_ref().is_some_and(|f| f.started <= started) {
                    state.failed = None;
                }
            }
            Err(_) if state.synced.is_some_and(|at| at > started) => {
                // A later sync succeeded already: this one's failure is old.
            }
            Err(error) => {
                let backoff = state
                    .failed
                    .as_ref()
                    .map_or(FIRST_BACKOFF, |f| (f.backoff * 2).min(MAX_BACKOFF));
                state.failed = Some(Failure {
                    started,
                    retry_at: Instant::now() + jittered(backoff),
                    backoff,
                    error,
                });
            }
        }
        self.ended.send_replace(());
    }
}

/// A wait between half of `backoff` and all of it, so that replicas that
/// failed together do not come back together.
pub fn jittered(backoff: Duration) -> Duration {
    let draw = RandomState::new().hash_one(Instant::now()) >> 11;
    backoff.mul_f64(0.5 + 0.5 * (draw as f64 / (1u64 << 53) as f64))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn counted(
        calls: &Arc<AtomicUsize>,
        result: Result<(), String>,
    ) -> impl FnOnce() -> std::future::Ready<Result<(), String>> + use<> {
        let calls = calls.clone();
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(result)
        }
    }

    #[tokio::test]
    async fn a_sync_serves_every_caller_that_came_before_it_started() {
        let freshness = Freshness::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let before = Instant::now();
        freshness
            .since(before, counted(&calls, Ok(())))
            .await
            .unwrap();
        // Already served: no second sync for a moment before the first.
        freshness
            .since(before, counted(&calls, Ok(())))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A later moment needs a later sync.
        freshness
            .since(Instant::now(), counted(&calls, Ok(())))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_syncs() {
        let freshness = Freshness::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let callers: Vec<_> = (0..200)
            .map(|_| {
                let (freshness, calls) = (freshness.clone(), calls.clone());
                tokio::spawn(async move {
                    let since = Instant::now();
                    let slow = {
                        let calls = calls.clone();
                        move || async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Ok(())
                        }
                    };
                    freshness.since(since, slow).await
                })
            })
            .collect();
        for caller in futures_join(callers.into_iter()).await {
            caller.unwrap().unwrap();
        }
        // Each sync takes 20 ms and all callers arrive within a few: the
        // first syncs run side by side, and one more serves the rest.
        let syncs = calls.load(Ordering::SeqCst);
        assert!(
            (1..=MAX_IN_FLIGHT + 1).contains(&syncs),
            "{syncs} syncs for 200 callers"
        );
    }

    /// On tokio's paused clock: the durations are exact.
    #[tokio::test(start_paused = true)]
    async fn a_caller_after_a_sync_started_waits_one_round_trip_not_two() {
        let freshness = Freshness::new();
        let slow = || async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(())
        };
        let first = {
            let freshness = freshness.clone();
            tokio::spawn(async move { freshness.since(Instant::now(), slow).await })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        let arrived = tokio::time::Instant::now();
        freshness.since(Instant::now(), slow).await.unwrap();
        // Its own sync, started at once: not the first one's last 70 ms
        // and then another 100.
        assert_eq!(arrived.elapsed(), Duration::from_millis(100));
        first.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_failure_fails_its_callers_and_backs_off() {
        let freshness = Freshness::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let error = freshness
            .since(Instant::now(), counted(&calls, Err("registry down".into())))
            .await
            .unwrap_err();
        assert_eq!(error, "registry down");
        assert!(
            freshness
                .backing_off()
                .is_some_and(|wait| wait <= FIRST_BACKOFF)
        );
        // Within the backoff, callers fail without a sync.
        let error = freshness
            .since(Instant::now(), counted(&calls, Ok(())))
            .await
            .unwrap_err();
        assert_eq!(error, "registry down");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // After it, a sync runs again, and its success clears the failure.
        tokio::time::sleep(FIRST_BACKOFF).await;
        freshness
            .since(Instant::now(), counted(&calls, Ok(())))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(freshness.backing_off(), None);
    }

    #[test]
    fn jitter_stays_within_half_and_all_of_the_backoff() {
        for _ in 0..1000 {
            let wait = jittered(Duration::from_secs(1));
            assert!(wait >= Duration::from_millis(500) && wait <= Duration::from_secs(1));
        }
    }

    async fn futures_join<T>(
        handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
    ) -> Vec<Result<T, tokio::task::JoinError>> {
        let mut results = Vec::new();
        for handle in handles {
            results.push(handle.await);
        }
        results
    }
}
