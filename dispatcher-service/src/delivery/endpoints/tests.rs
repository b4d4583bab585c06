//! Back-off, forgetting and pace of one endpoint.

use super::*;
use crate::domain::queue::Hold;

const FLOOR: Duration = Duration::from_secs(1);
const CEILING: Duration = Duration::from_secs(30);

/// An endpoint with 8 slots, `parked` deliveries waiting, and attempts
/// that lately took `pace` (none yet if zero).
fn endpoint(pace: Duration, parked: usize) -> Endpoint {
    let nil = Uuid::nil();
    let target = Arc::new(Target::new(nil, String::new(), None, None, vec![], &[]));
    let claim = Claim {
        id: nil,
        hold: Hold::handed_off(nil),
        event_id: nil,
        partner_id: nil,
        notification_type: 5,
        attempt_count: 0,
        series_attempts: 0,
        is_test: false,
        payload: bytes::Bytes::new(),
        trace_context: None,
        ordering_key: None,
    };
    let mut endpoint = Endpoint::new(8);
    endpoint.parked = (0..parked)
        .map(|_| (claim.clone(), target.clone(), Instant::now()))
        .collect();
    if !pace.is_zero() {
        endpoint.record_pace(pace);
    }
    endpoint
}

#[test]
fn an_endpoint_that_hangs_puts_its_surplus_off_for_its_parking_drain_time() {
    // Hangs until a 5 s timeout, 8 slots, 32 parked: 4 rounds of 5 s,
    // spread downwards by up to half.
    let hanging = endpoint(Duration::from_secs(5), 32);
    assert_eq!(
        hanging.back_off(8, FLOOR, CEILING, 0.0),
        Duration::from_secs(20)
    );
    assert_eq!(
        hanging.back_off(8, FLOOR, CEILING, 0.5),
        Duration::from_secs(15)
    );
    // Half as many parked: half as long.
    let fewer = endpoint(Duration::from_secs(5), 16);
    assert_eq!(
        fewer.back_off(8, FLOOR, CEILING, 0.0),
        Duration::from_secs(10)
    );
}

#[test]
fn the_ceiling_still_spreads_the_returns() {
    // A 15 s timeout drains in 60 s: capped at 30 s, then spread.
    let slow = endpoint(Duration::from_secs(15), 32);
    let waits: Vec<Duration> = [0.0, 0.3, 0.6, 0.9]
        .into_iter()
        .map(|draw| slow.back_off(8, FLOOR, CEILING, draw))
        .collect();
    assert_eq!(waits[0], CEILING);
    assert!(waits.windows(2).all(|w| w[1] < w[0]), "{waits:?}");
    assert!(waits.iter().all(|w| *w >= CEILING / 2), "{waits:?}");
}

#[test]
fn a_fast_an_unknown_or_a_stale_pace_waits_the_floor() {
    let fast = endpoint(Duration::from_millis(20), 32);
    assert_eq!(fast.back_off(8, FLOOR, CEILING, 0.5), FLOOR);
    let unknown = endpoint(Duration::ZERO, 32);
    assert_eq!(unknown.back_off(8, FLOOR, CEILING, 0.5), FLOOR);
    // Hung an hour ago, quiet since: its pace says nothing now.
    let mut quiet = endpoint(Duration::from_secs(5), 32);
    quiet.paced_at = Instant::now()
        .checked_sub(Duration::from_secs(3600))
        .expect("the clock is more than an hour past its origin");
    assert_eq!(quiet.back_off(8, FLOOR, CEILING, 0.0), FLOOR);
    // A ceiling below the floor gives the floor, and does not panic.
    let hanging = endpoint(Duration::from_secs(5), 32);
    assert_eq!(hanging.back_off(8, FLOOR, FLOOR / 2, 0.0), FLOOR);
}

#[test]
fn idle_endpoints_are_forgotten_busy_ones_kept() {
    let mut endpoints = HashMap::new();
    let idle = Uuid::from_u128(1);
    let attempting = Uuid::from_u128(2);
    let parking = Uuid::from_u128(3);
    endpoints.insert(idle, endpoint(Duration::from_secs(5), 0));
    endpoints.insert(attempting, endpoint(Duration::ZERO, 0));
    endpoints.insert(parking, endpoint(Duration::ZERO, 1));
    let permit = endpoints[&attempting]
        .slots
        .clone()
        .try_acquire_owned()
        .expect("a free slot");
    forget_idle(&mut endpoints, 8);
    assert!(!endpoints.contains_key(&idle));
    assert!(endpoints.contains_key(&attempting));
    assert!(endpoints.contains_key(&parking));
    drop(permit);
    if let Some(e) = endpoints.get_mut(&parking) {
        e.parked.clear();
    }
    forget_idle(&mut endpoints, 8);
    assert!(endpoints.is_empty());
}

#[test]
fn the_pace_follows_recent_attempts() {
    let mut endpoint = endpoint(Duration::ZERO, 0);
    endpoint.record_pace(Duration::from_secs(5));
    assert_eq!(endpoint.pace, Duration::from_secs(5));
    for _ in 0..30 {
        endpoint.record_pace(Duration::from_millis(10));
    }
    assert!(
        endpoint.pace < Duration::from_millis(20),
        "{:?}",
        endpoint.pace
    );
}
