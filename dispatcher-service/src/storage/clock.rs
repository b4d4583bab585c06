//! The database's clock, read without asking it each time.
//!
//! Due times, releases, the times attempts are logged at and the times
//! outcomes are reported at (which the registry orders outcomes by) all
//! come from one clock, the database's, so that a replica whose own clock
//! is off neither delays nor hurries deliveries, nor makes correct
//! replicas' reports look stale. The clock is read once per poll interval
//! on the claims connection and carried forward between readings on this
//! process's monotonic clock: the wall clock of the host is never used
//! once one reading has landed.

use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::Timestamptz;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::domain::DispatchError;

#[derive(Debug, Default)]
pub struct DbClock {
    /// The database's time at a reading, and this process's moment then.
    anchor: Mutex<Option<(DateTime<Utc>, Instant)>>,
}

impl DbClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// The database's time now, as last read and carried forward; the
    /// host's clock until the first reading.
    pub fn now(&self) -> DateTime<Utc> {
        let anchor = *self.anchor.lock().unwrap_or_else(|p| p.into_inner());
        match anchor {
            Some((at, then)) => at + then.elapsed(),
            None => Utc::now(),
        }
    }

    /// Reads the database's clock, placing its answer halfway through the
    /// round trip.
    pub async fn read(&self, conn: &mut AsyncPgConnection) -> Result<(), DispatchError> {
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
        let reading = (answer.now, sent + round_trip / 2);
        *self.anchor.lock().unwrap_or_else(|p| p.into_inner()) = Some(reading);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_reading_is_carried_forward_on_the_monotonic_clock() {
        let clock = DbClock::new();
        let before = Utc::now();
        assert!(clock.now() >= before, "the host's clock until a reading");
        let an_hour_ahead = Utc::now() + chrono::Duration::hours(1);
        *clock.anchor.lock().unwrap() = Some((an_hour_ahead, Instant::now()));
        std::thread::sleep(Duration::from_millis(20));
        let now = clock.now();
        assert!(now >= an_hour_ahead + chrono::Duration::milliseconds(20));
        assert!(now < an_hour_ahead + chrono::Duration::seconds(5));
    }
}
