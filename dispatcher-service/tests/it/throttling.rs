//! Issue 23, item 2: an endpoint that says "slow down" is held as a whole,
//! for its `Retry-After`, and its waiting deliveries spend no attempts; an
//! endpoint that fails everything is probed one delivery at a time instead
//! of every due delivery burning its retries, and when it answers again
//! the backlog flows.

use std::time::{Duration, Instant};

use callbacks_proto::dispatcher::v1 as dpb;
use test_support::{Reply, eventually};

use crate::{World, delivery_with_status, publish_one};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_holds_the_whole_endpoint_without_spending_attempts() {
    let mut world = World::start().await;
    world
        .receiver
        .respond("/busy", [Reply::status(429).header("retry-after", "2")]);
    let url = world.receiver.url("/busy");
    let (partner, _) = world.partner_with_callback(&url, None).await;
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    let client = &dispatcher.client;

    let first = publish_one(client, &partner, r#"{"n":0}"#).await;
    eventually("the 429 recorded", Duration::from_secs(10), || {
        let mut client = client.clone();
        let request = dpb::GetDeliveryRequest {
            delivery_id: first.clone(),
            partner_id: None,
        };
        async move {
            let d = client.get_delivery(request).await.ok()?.into_inner();
            (d.attempt_count == 1).then_some(())
        }
    })
    .await
    .unwrap();
    let throttled_at = world.receiver.requests_to("/busy")[0].received_at;
    let mut later = Vec::new();
    for n in 1..4 {
        later.push(publish_one(client, &partner, &format!(r#"{{"n":{n}}}"#)).await);
    }
    for id in &later {
        let delivered = delivery_with_status(
            client,
            id,
            dpb::DeliveryStatus::Delivered,
            Duration::from_secs(15),
        )
        .await;
        assert_eq!(delivered.attempt_count, 1, "waiting spent no attempt");
    }
    // The 429's own retry, due when the hold ends like the others.
    delivery_with_status(
        client,
        &first,
        dpb::DeliveryStatus::Delivered,
        Duration::from_secs(15),
    )
    .await;
    let requests = world.receiver.requests_to("/busy");
    assert_eq!(requests.len(), 5, "the 429, its retry, and one each");
    for request in &requests[1..] {
        let after = request.received_at - throttled_at;
        assert!(
            after >= Duration::from_millis(1900),
            "called {after:?} after the 429"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_probed_one_at_a_time_and_then_drains() {
    let mut world = World::start().await;
    world.receiver.set_default("/down", Reply::status(500));
    let url = world.receiver.url("/down");
    let (partner, _) = world.partner_with_callback(&url, None).await;
    // Three attempts 200 ms apart: without the circuit, every delivery
    // would have failed for good within a second.
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    let client = &dispatcher.client;
    let started = Instant::now();
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(publish_one(client, &partner, &format!(r#"{{"n":{n}}}"#)).await);
    }
    // Wait for the circuit to have opened and been probed after its first
    // hold (a second).
    eventually(
        "a probe after the circuit opened",
        Duration::from_secs(10),
        || {
            let calls = world.receiver.requests_to("/down");
            let probed = calls.last().is_some_and(|last| {
                last.received_at - calls[0].received_at >= Duration::from_secs(1)
            });
            async move { probed.then_some(()) }
        },
    )
    .await
    .unwrap();
    let calls = world.receiver.requests_to("/down").len();
    assert!(
        calls < 40,
        "{calls} calls in {:?}: not one per due retry",
        started.elapsed()
    );
    for id in &ids {
        let mut client = client.clone();
        let d = client
            .get_delivery(dpb::GetDeliveryRequest {
                delivery_id: id.clone(),
                partner_id: None,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(d.status(), dpb::DeliveryStatus::Pending, "held, not failed");
    }

    world.receiver.set_default("/down", Reply::status(200));
    let mut attempts = 0;
    for id in &ids {
        let delivered = delivery_with_status(
            client,
            id,
            dpb::DeliveryStatus::Delivered,
            Duration::from_secs(60),
        )
        .await;
        attempts += delivered.attempt_count;
    }
    assert!(
        attempts < 60,
        "{attempts} attempts for 20 deliveries: none ran out of retries"
    );
}
