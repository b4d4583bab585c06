//! Where this process's claims left the cursor, against the due times
//! that `NOTIFY`s announce: what tells the claim loop that work committed
//! behind the cursor, where a claim cannot see it, and a sweep must take
//! it (see `storage::queue`).
//!
//! A notification's due time is compared with where this process's claims
//! have taken the cursor as it arrives. At or before it, the work
//! committed behind the cursor, and the loop sweeps from there. After it,
//! the next claim takes the work, unless it arrived while a claim ran:
//! that claim may or may not have seen the commit, and if it passed the
//! due time, the loop sweeps from there too (at most once per
//! [`LATE_SWEEP_GAP`]). Work whose notification is lost, or whose due
//! time another replica's claims passed, waits for the full sweep that
//! each process makes once per poll interval.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// What the claim loop and the listener share about the cursor, in
/// microseconds since the epoch.
#[derive(Debug)]
pub(super) struct CursorWatch {
    /// The latest due time this process's claims took.
    passed: AtomicI64,
    /// Whether a claim is running.
    claiming: AtomicBool,
    /// The earliest due time notified while a claim ran and not at or
    /// before `passed`: the claim may have seen that work, or not.
    during: AtomicI64,
    /// The earliest due time notified at or before `passed` (work that
    /// committed behind the cursor), or notified during a claim that then
    /// passed it: for a sweep. `i64::MAX` when none.
    behind: AtomicI64,
}

/// The least time between two sweeps for work notified behind the cursor.
/// Under a steady stream of publishes nearly every claim runs while one
/// commits, and cannot tell whether it saw it; a sweep after each would
/// double the queue's statements. So such work waits up to this long.
pub(super) const LATE_SWEEP_GAP: Duration = Duration::from_millis(10);

impl CursorWatch {
    pub(super) fn new() -> Self {
        Self {
            passed: AtomicI64::new(i64::MIN),
            claiming: AtomicBool::new(false),
            during: AtomicI64::new(i64::MAX),
            behind: AtomicI64::new(i64::MAX),
        }
    }

    pub(super) fn claim_starts(&self) {
        self.claiming.store(true, Ordering::SeqCst);
    }

    /// A claim that took deliveries due up to `latest` has ended.
    pub(super) fn claim_ended(&self, latest: Option<DateTime<Utc>>) {
        if let Some(latest) = latest {
            self.passed
                .fetch_max(latest.timestamp_micros(), Ordering::SeqCst);
        }
        self.claiming.store(false, Ordering::SeqCst);
        let during = self.during.swap(i64::MAX, Ordering::SeqCst);
        if during <= self.passed.load(Ordering::SeqCst) {
            self.behind.fetch_min(during, Ordering::SeqCst);
        }
    }

    /// Notes work notified as due at `due`.
    pub(super) fn notified(&self, due: DateTime<Utc>) {
        let due = due.timestamp_micros();
        if due <= self.passed.load(Ordering::SeqCst) {
            self.behind.fetch_min(due, Ordering::SeqCst);
        } else if self.claiming.load(Ordering::SeqCst) {
            self.during.fetch_min(due, Ordering::SeqCst);
        }
    }

    pub(super) fn has_behind(&self) -> bool {
        self.behind.load(Ordering::SeqCst) != i64::MAX
    }

    /// The earliest due time notified behind the cursor since last asked.
    pub(super) fn take_behind(&self) -> Option<DateTime<Utc>> {
        match self.behind.swap(i64::MAX, Ordering::SeqCst) {
            i64::MAX => None,
            micros => DateTime::from_timestamp_micros(micros),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(micros: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(1_800_000_000_000_000 + micros).unwrap()
    }

    #[test]
    fn work_notified_behind_the_cursor_is_swept_for() {
        let watch = CursorWatch::new();
        watch.claim_starts();
        watch.claim_ended(Some(at(100)));
        // Ahead of where the claims went: the next claim takes it.
        watch.notified(at(101));
        assert_eq!(watch.take_behind(), None);
        // At or behind it: committed behind the cursor.
        watch.notified(at(90));
        watch.notified(at(100));
        assert_eq!(watch.take_behind(), Some(at(90)));
        assert_eq!(watch.take_behind(), None, "asked once");
    }

    #[test]
    fn work_notified_during_a_claim_is_swept_for_if_the_claim_passed_it() {
        let watch = CursorWatch::new();
        watch.claim_starts();
        watch.notified(at(50));
        // The claim ends short of it: the next claim takes it.
        watch.claim_ended(Some(at(40)));
        assert!(!watch.has_behind());
        watch.claim_starts();
        watch.notified(at(60));
        // This claim passed it, and may not have seen it.
        watch.claim_ended(Some(at(70)));
        assert_eq!(watch.take_behind(), Some(at(60)));
        // A claim that took nothing moves nothing.
        watch.claim_starts();
        watch.notified(at(80));
        watch.claim_ended(None);
        assert_eq!(watch.take_behind(), None);
    }
}
