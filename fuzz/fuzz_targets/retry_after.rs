//! A partner's `Retry-After` header, on any text: never a panic, and the
//! retry policy turns whatever it parses into a wait within its bound.
#![no_main]

use std::time::Duration;

use chrono::{TimeZone as _, Utc};
use dispatcher_service::domain::attempt::parse_retry_after;
use dispatcher_service::domain::{NextStep, RetryPolicy};
use libfuzzer_sys::fuzz_target;

const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

fuzz_target!(|input: (&str, u32, f64)| {
    let (header, failed, draw) = input;
    let now = Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap();
    let asked = parse_retry_after(header, now);
    let policy = RetryPolicy::new(
        vec![Duration::from_secs(5), Duration::from_secs(300)],
        0.2,
        MAX_RETRY_AFTER,
    )
    .unwrap();
    if let NextStep::RetryAfter(wait) = policy.next(failed, draw, asked) {
        assert!(
            wait <= MAX_RETRY_AFTER.max(Duration::from_secs(360)),
            "{wait:?}"
        );
    }
});
