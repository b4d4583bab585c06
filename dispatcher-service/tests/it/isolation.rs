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

/// A dispatcher that both publishes and delivers hands its own new
/// deliveries to its loop; those hand-offs may never take the slots that
/// claimed work (retries, redeliveries, other replicas' expired leases)
/// needs, or a steady stream of publishes would starve it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_offs_leave_half_of_the_slots_to_claims() {
    use dispatcher_service::delivery::http::{Deliverer, HttpSettings};
    use dispatcher_service::delivery::worker::{Worker, WorkerSettings};
    use dispatcher_service::domain::RetryPolicy;
    use dispatcher_service::registry::RegistryClient;
    use dispatcher_service::storage;

    let world = World::start().await;
    let pool = storage::connect(world.dispatch_db.url(), 2).await.unwrap();
    let (registry, _reporter) =
        RegistryClient::new(&world.registry_url, None, Duration::from_secs(5)).unwrap();
    let deliverer = Deliverer::new(HttpSettings {
        connect_timeout: Duration::from_secs(1),
        response_timeout: Duration::from_secs(1),
        allowed_networks: Vec::new(),
        allow_http: false,
        extra_ca_files: Vec::new(),
        max_idle_per_host: 8,
        dns_servers: Vec::new(),
    })
    .unwrap();
    let policy =
        RetryPolicy::new(vec![Duration::from_secs(1)], 0.0, Duration::from_secs(1)).unwrap();
    let worker = Worker::new(
        pool,
        registry,
        deliverer,
        policy,
        WorkerSettings {
            batch_size: 8,
            lease: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            max_in_flight: 8,
            per_endpoint: 2,
            defer_for: Duration::from_secs(1),
            paused_recheck: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(1),
        },
    );

    let first = worker.reserve(100);
    assert_eq!(first.len(), 4, "only the slots beyond half are reserved");
    assert!(
        worker.reserve(1).is_empty(),
        "the other half stays for claims"
    );
    let tokens: std::collections::HashSet<_> = first.iter().map(|r| r.lease.token).collect();
    assert_eq!(tokens.len(), 4, "each reservation has a lease of its own");
    // Reservations not handed off (a duplicate key, a failed commit) free
    // their slots when dropped.
    drop(first);
    assert_eq!(worker.reserve(3).len(), 3);
}
