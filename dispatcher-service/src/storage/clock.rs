//! The database's clock, read without asking it each time.
//!
//! Due times, releases, the times attempts are logged at and the times
//! outcomes are reported at (which the registry orders outcomes by) all
//! come from one clock, the database's, so that a replica whose own clock
//! is off neither delays nor hurries deliveries, nor makes correct
//! replicas' reports look stale. The clock is read once per poll interval
//! on the claims connection and carried forward between readings on this
//! process's monotonic clock: the wall clock of the host is never used
//! once one reading has landed. It also turns a database time (a
//! delivery's due time) into a moment of this process no earlier than the
//! true one (see `delivery::worker`, `became_due`).

use parking_lot::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::Timestamptz;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::domain::DispatchError;

#[derive(Debug, Default)]
pub(crate) struct DbClock {
    anchor: Mutex<Option<Reading>>,
}

/// The database's time at a reading, this process's moment then, and how
/// far off that pairing may be (half the time the reading took).
#[derive(Debug, Clone, Copy)]
struct Reading {
    at: DateTime<Utc>,
    then: Instant,
    error: std::time::Duration,
}

/// Added to a reading's own error when a database time is turned into a
/// moment here: the monotonic clock's drift since the reading, and the
/// database host's clock being slewed meanwhile, stay well within it.
const SLACK: std::time::Duration = std::time::Duration::from_millis(5);

impl DbClock {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The database's time now, as last read and carried forward; the
    /// host's clock until the first reading.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        let anchor = *self.anchor.lock();
        match anchor {
            Some(Reading { at, then, .. }) => at + then.elapsed(),
            // Before the first reading there is no other clock.
            #[allow(clippy::disallowed_methods)]
            None => Utc::now(),
        }
    }

    /// A moment here no earlier than when the database's clock read
    /// `time`; `None` before the first reading.
    pub(crate) fn no_earlier_than(&self, time: DateTime<Utc>) -> Option<Instant> {
        let reading = (*self.anchor.lock())?;
        let margin = reading.error + SLACK;
        match (time - reading.at).to_std() {
            Ok(after) => Some(reading.then + after + margin),
            Err(_) => {
                let before = (reading.at - time).to_std().ok()?;
                let earlier = reading.then.checked_sub(before)?;
                Some(earlier + margin)
            }
        }
    }

    /// Reads the database's clock, placing its answer halfway between the
    /// question and the answer.
    pub(crate) async fn read(&self, conn: &mut AsyncPgConnection) -> Result<(), DispatchError> {
        #[derive(QueryableByName)]
        struct Now {
            #[diesel(sql_type = Timestamptz)]
            now: DateTime<Utc>,
        }
        let sent = Instant::now();
        let answer: Now = diesel::sql_query("SELECT clock_timestamp() AS now")
            .get_result(conn)
            .await?;
        let round_trip = sent.elapsed();
        let reading = Reading {
            at: answer.now,
            then: sent + round_trip / 2,
            error: round_trip / 2,
        };
        *self.anchor.lock() = Some(reading);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests set times on the wall clock on purpose.
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_reading_is_carried_forward_on_the_monotonic_clock() {
        let clock = DbClock::new();
        let before = Utc::now();
        assert!(clock.now() >= before, "the host's clock until a reading");
        let an_hour_ahead = Utc::now() + chrono::Duration::hours(1);
        // A reading taken 20 ms ago, on the monotonic clock.
        *clock.anchor.lock() = Some(Reading {
            at: an_hour_ahead,
            then: Instant::now() - Duration::from_millis(20),
            error: Duration::from_millis(1),
        });
        let now = clock.now();
        assert!(now >= an_hour_ahead + chrono::Duration::milliseconds(20));
        assert!(now < an_hour_ahead + chrono::Duration::seconds(5));
    }

    #[test]
    fn a_database_time_becomes_a_moment_here_no_earlier_than_it() {
        let clock = DbClock::new();
        assert_eq!(clock.no_earlier_than(Utc::now()), None, "no reading yet");
        let (at, then) = (Utc::now(), Instant::now());
        *clock.anchor.lock() = Some(Reading {
            at,
            then,
            error: Duration::from_millis(2),
        });
        let margin = Duration::from_millis(2) + SLACK;
        let second = chrono::Duration::seconds(1);
        assert_eq!(
            clock.no_earlier_than(at - second),
            then.checked_sub(Duration::from_secs(1)).map(|t| t + margin)
        );
        assert_eq!(
            clock.no_earlier_than(at + second),
            Some(then + Duration::from_secs(1) + margin)
        );
    }
}
