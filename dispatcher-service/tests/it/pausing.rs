//! Issue 23, item 2: a paused registration keeps its events; its
//! deliveries wait, unattempted and uncounted, and flow once it is resumed.

use std::time::Duration;

use callbacks_proto::dispatcher::v1 as dpb;
use callbacks_proto::registry::v1 as rpb;
use test_support::eventually;

use crate::{TYPE, World, delivery_with_status, publish_one};

/// When the delivery is next due, once it differs from `than`.
async fn due_other_than(
    client: &dpb::dispatcher_service_client::DispatcherServiceClient<tonic::transport::Channel>,
    id: &str,
    than: Option<prost_types::Timestamp>,
) -> dpb::Delivery {
    eventually(
        "the delivery to be held again",
        Duration::from_secs(10),
        || {
            let mut client = client.clone();
            let request = dpb::GetDeliveryRequest {
                delivery_id: id.into(),
                partner_id: None,
            };
            async move {
                let delivery = client.get_delivery(request).await.ok()?.into_inner();
                (delivery.next_attempt_at != than).then_some(delivery)
            }
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_registration_holds_its_deliveries_until_resumed() {
    let mut world = World::start().await;
    let url = world.receiver.url("/paused");
    let (partner, _) = world.partner_with_callback(&url, None).await;
    world
        .registry
        .pause_callback(rpb::PauseCallbackRequest {
            partner_id: partner.clone(),
            notification_type: TYPE,
            reason: Some("maintenance".into()),
        })
        .await
        .unwrap();
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    let client = &dispatcher.client;

    // Stored and given a delivery, as for any active registration.
    let id = publish_one(client, &partner, r#"{"n":1}"#).await;
    let first = due_other_than(client, &id, None).await;
    // Held at least twice: looked at, and put back, without an attempt.
    let held = due_other_than(client, &id, first.next_attempt_at).await;
    let held = due_other_than(client, &id, held.next_attempt_at).await;
    assert_eq!(held.status(), dpb::DeliveryStatus::Pending);
    assert_eq!(held.attempt_count, 0, "holding is not attempting");
    assert!(world.receiver.requests_to("/paused").is_empty());
    let registration = world.registration(&partner).await.unwrap();
    assert!(!registration.is_in_error_state, "a pause is not a failure");

    world
        .registry
        .resume_callback(rpb::ResumeCallbackRequest {
            partner_id: partner.clone(),
            notification_type: TYPE,
        })
        .await
        .unwrap();
    let delivered = delivery_with_status(
        client,
        &id,
        dpb::DeliveryStatus::Delivered,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(delivered.attempt_count, 1, "one attempt, after the resume");
    let requests = world.receiver.requests_to("/paused");
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body_text(), r#"{"n":1}"#);
}
