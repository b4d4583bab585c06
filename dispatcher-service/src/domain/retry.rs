//! When to try again. The policy is a value: given how many attempts of the
//! current series have failed, a jitter draw in `[0, 1)` and the endpoint's
//! `Retry-After`, it says how long to wait or that it is time to give up.
//! Randomness comes in from outside, so every decision is testable.

use std::time::Duration;

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    RetryAfter(Duration),
    GiveUp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// The wait after the 1st, 2nd, … failed attempt; one attempt more than
    /// there are entries is made in all.
    schedule: Vec<Duration>,
    /// Each wait is spread by up to ± this fraction, so that endpoints that
    /// failed together are not retried together.
    jitter: f64,
    /// `Retry-After` is honoured, but never beyond this.
    max_retry_after: Duration,
}

/// The shortest wait a `Retry-After` can ask for.
const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);

impl Default for RetryPolicy {
    /// About two days in all: 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h,
    /// 6 h, 12 h, 24 h.
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        Self {
            schedule: vec![
                Duration::from_secs(5),
                Duration::from_secs(30),
                minutes(2),
                minutes(10),
                minutes(30),
                minutes(60),
                minutes(180),
                minutes(360),
                minutes(720),
                minutes(1440),
            ],
            jitter: 0.2,
            max_retry_after: minutes(60),
        }
    }
}

impl RetryPolicy {
    pub fn new(
        schedule: Vec<Duration>,
        jitter: f64,
        max_retry_after: Duration,
    ) -> Result<Self, String> {
        if !(0.0..=0.5).contains(&jitter) {
            return Err("jitter must be between 0 and 0.5".into());
        }
        if schedule.iter().any(Duration::is_zero) {
            return Err("every wait in the schedule must be positive".into());
        }
        Ok(Self {
            schedule,
            jitter,
            max_retry_after,
        })
    }

    /// `5s,30s,2m,…` (humantime durations, comma-separated; empty means
    /// "never retry").
    pub fn parse_schedule(text: &str) -> Result<Vec<Duration>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}")))
            .collect()
    }

    /// Attempts in one series: the first one and one per scheduled wait.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.schedule.len()).unwrap_or(u32::MAX - 1) + 1
    }

    /// The configured waits between attempts.
    pub fn schedule(&self) -> &[Duration] {
        &self.schedule
    }

    /// The step after the `failed`-th failed attempt of the series (1-based).
    pub fn next(&self, failed: u32, jitter_draw: f64, retry_after: Option<Duration>) -> NextStep {
        self.next_on(&self.schedule, failed, jitter_draw, retry_after)
    }

    /// As [`next`](Self::next), on `waits` instead of the configured
    /// schedule (a registration's own policy): the jitter and the cap on
    /// `Retry-After` stay the operator's.
    pub fn next_on(
        &self,
        waits: &[Duration],
        failed: u32,
        jitter_draw: f64,
        retry_after: Option<Duration>,
    ) -> NextStep {
        let Some(base) = failed.checked_sub(1).and_then(|i| waits.get(i as usize)) else {
            return NextStep::GiveUp;
        };
        if let Some(asked) = retry_after {
            return NextStep::RetryAfter(
                asked.clamp(MIN_RETRY_AFTER, self.max_retry_after.max(MIN_RETRY_AFTER)),
            );
        }
        // A draw that is not a number counts as the middle; a wait too long
        // for `Duration` stays unspread: neither may panic.
        let draw = if jitter_draw.is_nan() {
            0.5
        } else {
            jitter_draw.clamp(0.0, 1.0)
        };
        let factor = 1.0 - self.jitter + 2.0 * self.jitter * draw;
        NextStep::RetryAfter(
            Duration::try_from_secs_f64(base.as_secs_f64() * factor).unwrap_or(*base),
        )
    }

    /// The longest `Retry-After` honoured.
    pub fn max_retry_after(&self) -> Duration {
        self.max_retry_after
    }

    /// The longest a series can take, without jitter.
    pub fn total(&self) -> Duration {
        self.schedule.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn default_spans_about_two_days() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.max_attempts(), 11);
        let hours = policy.total().as_secs_f64() / 3600.0;
        assert!((46.0..=48.0).contains(&hours), "{hours} h");
    }

    #[test]
    fn waits_follow_the_schedule_then_give_up() {
        let policy = RetryPolicy::new(vec![secs(5), secs(30)], 0.0, secs(3600)).unwrap();
        assert_eq!(policy.next(1, 0.5, None), NextStep::RetryAfter(secs(5)));
        assert_eq!(policy.next(2, 0.5, None), NextStep::RetryAfter(secs(30)));
        assert_eq!(policy.next(3, 0.5, None), NextStep::GiveUp);
        assert_eq!(policy.next(0, 0.5, None), NextStep::GiveUp);
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        let policy = RetryPolicy::default();
        for failed in 1..=10 {
            let base = policy.schedule[failed as usize - 1];
            for step in 0..=100 {
                let draw = f64::from(step) / 100.0;
                let NextStep::RetryAfter(wait) = policy.next(failed, draw, None) else {
                    panic!("gave up too early");
                };
                assert!(
                    wait >= base.mul_f64(0.8) && wait <= base.mul_f64(1.2),
                    "{wait:?} vs {base:?}"
                );
            }
        }
        // Out-of-range draws are clamped, not trusted.
        assert_eq!(policy.next(1, 7.0, None), policy.next(1, 1.0, None));
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let policy = RetryPolicy::new(vec![secs(5), secs(30)], 0.2, secs(600)).unwrap();
        assert_eq!(
            policy.next(1, 0.5, Some(secs(120))),
            NextStep::RetryAfter(secs(120))
        );
        assert_eq!(
            policy.next(1, 0.5, Some(secs(86_400))),
            NextStep::RetryAfter(secs(600))
        );
        assert_eq!(
            policy.next(1, 0.5, Some(Duration::ZERO)),
            NextStep::RetryAfter(secs(1))
        );
        // Retry-After never extends the series.
        assert_eq!(policy.next(3, 0.5, Some(secs(10))), NextStep::GiveUp);
    }

    proptest::proptest! {
        /// Whatever the draw (NaN and infinities included), the wait after
        /// a scheduled failure lies within the jitter of its base, and no
        /// schedule of up to a century per step panics.
        #[test]
        fn every_wait_lies_within_the_jitter_of_its_base(
            schedule in proptest::collection::vec(1u64..3_155_760_000, 1..12),
            jitter in 0.0f64..=0.5,
            draw in proptest::num::f64::ANY,
            failed in 0u32..16,
        ) {
            let schedule: Vec<Duration> = schedule.into_iter().map(secs).collect();
            let policy = RetryPolicy::new(schedule.clone(), jitter, secs(3600)).unwrap();
            match (policy.next(failed, draw, None), failed.checked_sub(1).and_then(|i| schedule.get(i as usize))) {
                (NextStep::RetryAfter(wait), Some(base)) => {
                    let (low, high) = (base.as_secs_f64() * (1.0 - jitter), base.as_secs_f64() * (1.0 + jitter));
                    let wait = wait.as_secs_f64();
                    proptest::prop_assert!(wait >= low - 1e-6 && wait <= high + 1e-6, "{} not in {}..{}", wait, low, high);
                }
                (NextStep::GiveUp, None) => {}
                (step, base) => proptest::prop_assert!(false, "{:?} after failure {} of {:?}", step, failed, base),
            }
        }

        /// `Retry-After` is clamped to [1 s, the maximum] and never extends
        /// the series; with no jitter the waits are the schedule itself.
        #[test]
        fn retry_after_is_clamped_and_the_base_is_the_schedule(
            schedule in proptest::collection::vec(1u64..100_000, 1..12),
            asked in proptest::num::u64::ANY,
            max in 0u64..100_000,
        ) {
            let schedule: Vec<Duration> = schedule.into_iter().map(secs).collect();
            let policy = RetryPolicy::new(schedule.clone(), 0.0, secs(max)).unwrap();
            for (i, base) in schedule.iter().enumerate() {
                let failed = u32::try_from(i).unwrap() + 1;
                proptest::prop_assert_eq!(policy.next(failed, 0.3, None), NextStep::RetryAfter(*base));
                let NextStep::RetryAfter(wait) = policy.next(failed, 0.3, Some(secs(asked))) else {
                    return Err(proptest::test_runner::TestCaseError::fail("gave up inside the schedule"));
                };
                proptest::prop_assert!(wait >= secs(1) && wait <= secs(max.max(1)));
            }
            proptest::prop_assert_eq!(policy.next(policy.max_attempts(), 0.3, Some(secs(asked))), NextStep::GiveUp);
        }
    }

    #[test]
    fn schedules_parse() {
        assert_eq!(
            RetryPolicy::parse_schedule("100ms, 2s,1m").unwrap(),
            vec![Duration::from_millis(100), secs(2), secs(60)]
        );
        assert!(RetryPolicy::parse_schedule("5 parsecs").is_err());
        assert!(RetryPolicy::parse_schedule("").unwrap().is_empty());
        assert!(RetryPolicy::new(vec![Duration::ZERO], 0.1, secs(1)).is_err());
    }
}
