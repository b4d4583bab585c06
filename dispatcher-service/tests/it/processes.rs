//! Dispatchers come and go without losing anything: a dispatcher process
//! killed with SIGKILL mid-delivery, two replicas on one queue, and a
//! graceful shutdown that finishes or releases what is in flight.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use callbacks_proto::dispatcher::v1 as dpb;
use test_support::{ReceivedRequest, Reply, eventually};
use tokio::process::{Child, Command};

use crate::{World, publish, publish_one};

/// How many times each webhook-id arrived.
fn arrivals(requests: &[ReceivedRequest]) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for request in requests {
        *seen
            .entry(request.header("webhook-id").unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    seen
}

fn spawn_dispatcher_process(world: &World) -> Child {
    dispatcher_command(world).spawn().unwrap()
}

/// libfaketime, which shifts a process's clocks (`deploy/lib.sh` installs
/// it for the test command).
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

pub(crate) fn dispatcher_command(world: &World) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dispatcher-service"));
    command
        .env("DISPATCHER_LISTEN", "127.0.0.1:0")
        .env("DISPATCHER_ADMIN_LISTEN", "127.0.0.1:0")
        .env("DISPATCHER_DATABASE_URL", world.dispatch_db.url())
        .env("DISPATCHER_REGISTRY_URL", &world.registry_url)
        .env("DISPATCHER_EXTRA_CA_FILES", &world.ca_file.0)
        .env("DISPATCHER_ALLOWED_CALLBACK_NETWORKS", "127.0.0.0/8")
        .env("DISPATCHER_RETRY_SCHEDULE", "200ms,200ms,200ms")
        .env("DISPATCHER_CONNECT_TIMEOUT", "500ms")
        .env("DISPATCHER_RESPONSE_TIMEOUT", "1s")
        .env("DISPATCHER_LEASE", "3s")
        .env("DISPATCHER_POLL_INTERVAL", "200ms")
        .env("DISPATCHER_MAX_IN_FLIGHT", "16")
        .env("DISPATCHER_OPEN_GRPC", "true")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_killed_mid_delivery_loses_nothing() {
    const EVENTS: usize = 300;
    let mut world = World::start().await;
    // Slow answers keep many deliveries in flight when the kill comes.
    world
        .receiver
        .set_global_default(Reply::ok().after(Duration::from_millis(100)));
    let (partner, _) = world
        .partner_with_callback(&world.receiver.url("/hooks"), None)
        .await;
    // This process only accepts and stores; the child process delivers.
    let mut config = world.dispatcher_config();
    config.delivery_workers = false;
    let publisher = world.start_dispatcher(config).await;
    let events: Vec<_> = (0..EVENTS)
        .map(|i| publish(&partner, &format!(r#"{{"n":{i}}}"#)))
        .collect();
    publisher
        .client
        .clone()
        .publish_batch(dpb::PublishBatchRequest { events })
        .await
        .unwrap();

    let mut child = spawn_dispatcher_process(&world);
    world
        .receiver
        .wait_for_requests(40, Duration::from_secs(20))
        .await
        .unwrap();
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    let at_kill = world.receiver.requests().len();
    assert!(
        at_kill < EVENTS,
        "the kill came mid-delivery ({at_kill} of {EVENTS} arrived)"
    );

    let _restarted = spawn_dispatcher_process(&world);
    eventually(
        "every event to arrive after the restart",
        Duration::from_secs(60),
        || {
            let seen = arrivals(&world.receiver.requests());
            async move { (seen.len() == EVENTS).then_some(()) }
        },
    )
    .await
    .unwrap();
    let seen = arrivals(&world.receiver.requests());
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "SIGKILL test: {EVENTS} events, {at_kill} arrived before the kill, {duplicates} duplicates after restart"
    );
    assert_eq!(seen.len(), EVENTS, "nothing lost");

    let db = world.dispatch_db.client().await.unwrap();
    crate::all_delivered(&db, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_deliver_everything_once() {
    const EVENTS: usize = 300;
    let mut world = World::start().await;
    let (partner, _) = world
        .partner_with_callback(&world.receiver.url("/hooks"), None)
        .await;
    let first = world.start_dispatcher(world.dispatcher_config()).await;
    let second = world.start_dispatcher(world.dispatcher_config()).await;
    let mut client = first.client.clone();
    for chunk in 0..3 {
        let events: Vec<_> = (0..EVENTS / 3)
            .map(|i| publish(&partner, &format!(r#"{{"chunk":{chunk},"n":{i}}}"#)))
            .collect();
        client
            .publish_batch(dpb::PublishBatchRequest { events })
            .await
            .unwrap();
    }
    world
        .receiver
        .wait_for_requests(EVENTS, Duration::from_secs(30))
        .await
        .unwrap();
    let db = world.dispatch_db.client().await.unwrap();
    eventually(
        "all deliveries to be marked delivered",
        Duration::from_secs(10),
        || {
            let db = &db;
            async move {
                let n: i64 = db
                    .query_one(
                        "SELECT count(*) FROM deliveries WHERE status = 'delivered'",
                        &[],
                    )
                    .await
                    .ok()?
                    .get(0);
                (n == EVENTS as i64).then_some(())
            }
        },
    )
    .await
    .unwrap();
    let seen = arrivals(&world.receiver.requests());
    assert_eq!(seen.len(), EVENTS);
    assert!(seen.values().all(|n| *n == 1), "none twice");
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_work_or_releases_it() {
    let mut world = World::start().await;
    world
        .receiver
        .set_default("/slow", Reply::ok().after(Duration::from_millis(700)));
    world.receiver.set_default("/stuck", Reply::hang());
    let (slow, _) = world
        .partner_with_callback(&world.receiver.url("/slow"), None)
        .await;

    // Graceful: the attempts in flight finish within the grace period.
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    let mut client = dispatcher.client.clone();
    for i in 0..3 {
        client
            .publish(publish(&slow, &format!(r#"{{"n":{i}}}"#)))
            .await
            .unwrap();
    }
    world
        .receiver
        .wait_for_requests_to("/slow", 3, Duration::from_secs(5))
        .await
        .unwrap();
    dispatcher.stop().await;
    let db = world.dispatch_db.client().await.unwrap();
    let delivered: i64 = db
        .query_one(
            "SELECT count(*) FROM deliveries WHERE status = 'delivered'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(delivered, 3, "in-flight attempts finished before the stop");

    // Past the grace period: released, due now, for another replica.
    let (stuck, _) = world
        .partner_with_callback(&world.receiver.url("/stuck"), None)
        .await;
    let mut config = world.dispatcher_config();
    config.shutdown_grace = Duration::from_millis(200);
    config.response_timeout = Duration::from_secs(5);
    config.lease = Duration::from_secs(30);
    let dispatcher = world.start_dispatcher(config).await;
    let id = publish_one(&dispatcher.client, &stuck, "{}").await;
    world
        .receiver
        .wait_for_requests_to("/stuck", 1, Duration::from_secs(5))
        .await
        .unwrap();
    dispatcher.stop().await;
    let row = db
        .query_one(
            "SELECT status, lease_token IS NULL, next_attempt_at <= now(), attempt_count FROM deliveries WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "pending");
    assert!(row.get::<_, bool>(1), "the lease was released");
    assert!(row.get::<_, bool>(2), "due again at once");
    assert_eq!(
        row.get::<_, i32>(3),
        0,
        "an abandoned attempt is not counted"
    );
}

/// Issue 19, item 7: due times and outcome reports come from the database's
/// clock. A replica whose clock runs an hour ahead fails an attempt; its
/// retry is due a second later (not an hour and a second), and the success
/// a correct replica then reports clears the error state (the skewed
/// replica's failure is not dated an hour ahead of it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_a_skewed_clock_neither_delays_retries_nor_pins_the_error_state() {
    assert!(
        std::path::Path::new(FAKETIME).exists(),
        "{FAKETIME} is missing: install Debian's faketime (deploy/run-tests.sh does)"
    );
    let mut world = World::start().await;
    world
        .receiver
        .respond("/flaky", [Reply::status(500), Reply::ok()]);
    let (partner, _) = world
        .partner_with_callback(&world.receiver.url("/flaky"), None)
        .await;
    let mut config = world.dispatcher_config();
    config.delivery_workers = false;
    let publisher = world.start_dispatcher(config).await;

    let mut skewed = dispatcher_command(&world);
    skewed
        .env("LD_PRELOAD", FAKETIME)
        .env("FAKETIME", "+1h")
        .env("DISPATCHER_RETRY_SCHEDULE", "2s");
    let mut skewed = skewed.spawn().unwrap();
    let id = publish_one(&publisher.client, &partner, "{}").await;
    world
        .receiver
        .wait_for_requests_to("/flaky", 1, Duration::from_secs(10))
        .await
        .unwrap();
    crate::registration_when(&world, &partner, "the error state", |r| r.is_in_error_state).await;
    skewed.start_kill().unwrap();
    skewed.wait().await.unwrap();

    let mut correct = dispatcher_command(&world);
    correct.env("DISPATCHER_RETRY_SCHEDULE", "2s");
    let _correct = correct.spawn().unwrap();
    crate::delivery_with_status(
        &publisher.client,
        &id,
        dpb::DeliveryStatus::Delivered,
        Duration::from_secs(10),
    )
    .await;
    crate::registration_when(&world, &partner, "the error state to clear", |r| {
        !r.is_in_error_state
    })
    .await;
}

/// Issue 23, item 2: a hold is shared on the database's clock. A replica
/// an hour ahead hears "429, Retry-After: 3"; a correct replica started
/// after it is killed holds the endpoint for those seconds, not for an
/// hour and three seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_heard_by_a_replica_with_a_skewed_clock_lasts_its_seconds_on_the_others() {
    assert!(
        std::path::Path::new(FAKETIME).exists(),
        "{FAKETIME} is missing: install Debian's faketime (deploy/run-tests.sh does)"
    );
    let mut world = World::start().await;
    world
        .receiver
        .respond("/busy", [Reply::status(429).header("retry-after", "3")]);
    let (partner, registration) = world
        .partner_with_callback(&world.receiver.url("/busy"), None)
        .await;
    let mut config = world.dispatcher_config();
    config.delivery_workers = false;
    let publisher = world.start_dispatcher(config).await;
    let mut skewed = dispatcher_command(&world);
    skewed.env("LD_PRELOAD", FAKETIME).env("FAKETIME", "+1h");
    let mut skewed = skewed.spawn().unwrap();

    publish_one(&publisher.client, &partner, r#"{"n":0}"#).await;
    let throttled = world
        .receiver
        .wait_for_requests_to("/busy", 1, Duration::from_secs(10))
        .await
        .unwrap()[0]
        .received_at;
    let db = world.dispatch_db.client().await.unwrap();
    crate::shared_limits::hold_shared(&db, &registration).await;
    skewed.start_kill().unwrap();
    skewed.wait().await.unwrap();

    let _correct = dispatcher_command(&world).spawn().unwrap();
    publish_one(&publisher.client, &partner, r#"{"n":1}"#).await;
    world
        .receiver
        .wait_for_requests_to("/busy", 3, Duration::from_secs(20))
        .await
        .unwrap();
    let held = Duration::from_millis(2900);
    crate::shared_limits::none_during_the_hold(&world, "/busy", throttled, held);
}
