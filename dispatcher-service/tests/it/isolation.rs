//! One endpoint that hangs for its whole timeout must not hold back the
//! others: while partner A's endpoint hangs on every request, partner B's
//! events arrive within a bound this test states.

use std::time::{Duration, Instant};

use test_support::Reply;

use crate::{World, publish};

/// How late B's deliveries may arrive while A hangs. A's attempts each hang
/// for the full response timeout (3 s here), so anything that made B wait
/// behind A would show as a delay of seconds.
const BOUND: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_does_not_delay_another_partner() {
    let mut world = World::start().await;
    world.receiver.set_default("/a", Reply::hang());
    let (a, _) = world
        .partner_with_callback(&world.receiver.url("/a"), None)
        .await;
    let (b, _) = world
        .partner_with_callback(&world.receiver.url("/b"), None)
        .await;
    let mut config = world.dispatcher_config();
    config.response_timeout = Duration::from_secs(3);
    config.lease = Duration::from_secs(10);
    config.per_endpoint_concurrency = 2;
    config.max_in_flight = 8;
    let dispatcher = world.start_dispatcher(config).await;
    let mut client = dispatcher.client.clone();

    // A's backlog first: far more than its two slots.
    for i in 0..20 {
        client
            .publish(publish(&a, &format!(r#"{{"a":{i}}}"#)))
            .await
            .unwrap();
    }
    world
        .receiver
        .wait_for_requests_to("/a", 2, Duration::from_secs(5))
        .await
        .unwrap();

    // Then B's events, one at a time, each timed from publish to arrival.
    for i in 0..10 {
        let sent = Instant::now();
        client
            .publish(publish(&b, &format!(r#"{{"b":{i}}}"#)))
            .await
            .unwrap();
        let arrived = world
            .receiver
            .wait_for_requests_to("/b", i + 1, BOUND)
            .await
            .unwrap();
        let latency = arrived[i].received_at.saturating_duration_since(sent);
        assert!(latency < BOUND, "B's event {i} took {latency:?}");
    }
    // A never had more than its two slots in flight at once.
    assert!(
        world.receiver.requests_to("/a").len() <= 4,
        "{}",
        world.receiver.requests_to("/a").len()
    );
}
