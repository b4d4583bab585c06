//! The happy path: a published event arrives once, with the exact body, the
//! Standard Webhooks headers (verified by the published `standardwebhooks`
//! crate, not our code), basic-auth credentials when registered, and
//! signatures for both secrets during a rotation.

use std::time::Duration;

use base64::Engine as _;
use callbacks_proto::dispatcher::v1 as dpb;
use callbacks_proto::registry::v1 as rpb;

use crate::{TYPE, World, delivery_with_status, publish, sorted_bodies};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrives_once_exact_signed_and_authenticated() {
    let mut world = World::start().await;
    let url = world.receiver.url("/hooks/acme?tenant=1");
    let (partner, registration) = world
        .partner_with_callback(&url, Some(("acme", "s3cret pw")))
        .await;
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;

    // Odd spacing and key order: the body must arrive byte for byte.
    let payload = "{\"processUniqueId\": \"p-1\",  \"amount\" :12.50, \"items\":[ 1,2 ]}";
    let published = dispatcher
        .client
        .clone()
        .publish(publish(&partner, payload))
        .await
        .unwrap()
        .into_inner();
    let delivery_id = published.delivery_id.clone().expect("a subscriber exists");
    assert!(!published.duplicate);

    let requests = world
        .receiver
        .wait_for_requests(1, Duration::from_secs(10))
        .await
        .unwrap();
    let request = &requests[0];
    assert_eq!(request.method, http::Method::POST);
    assert_eq!(request.path_and_query, "/hooks/acme?tenant=1");
    assert_eq!(request.body.as_ref(), payload.as_bytes());
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("webhook-id"), Some(delivery_id.as_str()));
    assert_eq!(
        request.header("partner-callbacks-test"),
        None,
        "only test deliveries are marked"
    );
    let timestamp: i64 = request
        .header("webhook-timestamp")
        .unwrap()
        .parse()
        .unwrap();
    assert!((timestamp - chrono::Utc::now().timestamp()).abs() < 30);
    let expected_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("acme:s3cret pw")
    );
    assert_eq!(
        request.header("authorization"),
        Some(expected_auth.as_str())
    );

    // An independent verifier accepts the signature.
    let secret = world
        .registry
        .get_signing_secret(rpb::GetSigningSecretRequest {
            partner_id: partner.clone(),
            notification_type: TYPE,
        })
        .await
        .unwrap()
        .into_inner()
        .current;
    let verifier = standardwebhooks::Webhook::new(&secret).unwrap();
    verifier
        .verify(&request.body, &request.headers)
        .expect("signature verifies");
    // And refuses a tampered body.
    assert!(
        verifier
            .verify(b"{\"amount\": 1000000}", &request.headers)
            .is_err()
    );

    // Delivered, with one attempt, and nothing more arrives.
    let delivery = delivery_with_status(
        &dispatcher.client,
        &delivery_id,
        dpb::DeliveryStatus::Delivered,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(delivery.attempt_count, 1);
    assert_eq!(delivery.attempts[0].response_status, Some(200));
    assert_eq!(delivery.attempts[0].response_excerpt, "ok");
    assert_eq!(world.receiver.requests().len(), 1, "delivered once");
    assert!(
        !world
            .registration(&partner)
            .await
            .unwrap()
            .is_in_error_state
    );
    let _ = registration;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_rotation_both_secrets_verify() {
    let mut world = World::start().await;
    let url = world.receiver.url("/hooks");
    let (partner, _) = world.partner_with_callback(&url, None).await;
    let rotated = world
        .registry
        .rotate_signing_secret(rpb::RotateSigningSecretRequest {
            partner_id: partner.clone(),
            notification_type: TYPE,
            previous_expires_in_seconds: None,
        })
        .await
        .unwrap()
        .into_inner();
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    dispatcher
        .client
        .clone()
        .publish(publish(&partner, r#"{"processUniqueId":"p"}"#))
        .await
        .unwrap();
    let request = world
        .receiver
        .wait_for_requests(1, Duration::from_secs(10))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        request
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        2
    );
    assert!(
        request.header("authorization").is_none(),
        "no credentials registered"
    );
    for secret in [rotated.current, rotated.previous[0].key.clone()] {
        standardwebhooks::Webhook::new(&secret)
            .unwrap()
            .verify(&request.body, &request.headers)
            .expect("each secret verifies");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idempotency_key_prevents_a_second_delivery() {
    let mut world = World::start().await;
    let url = world.receiver.url("/hooks");
    let (partner, _) = world.partner_with_callback(&url, None).await;
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    let mut client = dispatcher.client.clone();

    let mut request = publish(&partner, r#"{"processUniqueId":"p"}"#);
    request.idempotency_key = Some("order-42".into());
    let first = client.publish(request.clone()).await.unwrap().into_inner();
    let again = client.publish(request.clone()).await.unwrap().into_inner();
    assert!(again.duplicate);
    assert_eq!(again.event_id, first.event_id);
    assert_eq!(again.delivery_id, first.delivery_id);
    // Same key in a batch, too.
    let batch = client
        .publish_batch(dpb::PublishBatchRequest {
            events: vec![request.clone(), request],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        batch
            .results
            .iter()
            .all(|r| r.duplicate && r.event_id == first.event_id)
    );

    let delivery_id = first.delivery_id.unwrap();
    delivery_with_status(
        &client,
        &delivery_id,
        dpb::DeliveryStatus::Delivered,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(world.receiver.requests().len(), 1);
}

/// Events with and without an idempotency key go in by statements of their
/// own (`storage::events`); the answers keep the batch's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_mixing_keyed_and_unkeyed_events_answers_each_in_order() {
    let mut world = World::start().await;
    let url = world.receiver.url("/hooks");
    let (partner, _) = world.partner_with_callback(&url, None).await;
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    let mut client = dispatcher.client.clone();
    let keyed = |n: u32, key: &str| {
        let mut request = publish(&partner, &format!(r#"{{"n":{n}}}"#));
        request.idempotency_key = Some(key.into());
        request
    };
    let first = client
        .publish(keyed(0, "order-1"))
        .await
        .unwrap()
        .into_inner();

    let events = vec![
        publish(&partner, r#"{"n":1}"#),
        keyed(2, "order-1"),
        keyed(3, "order-2"),
        publish(&partner, r#"{"n":4}"#),
        keyed(5, "order-2"),
    ];
    let results = client
        .publish_batch(dpb::PublishBatchRequest { events })
        .await
        .unwrap()
        .into_inner()
        .results;
    let duplicate: Vec<bool> = results.iter().map(|r| r.duplicate).collect();
    assert_eq!(duplicate, [false, true, false, false, true], "{results:?}");
    assert_eq!(results[1].event_id, first.event_id, "the key's first event");
    assert_eq!(results[1].delivery_id, first.delivery_id);
    assert_eq!(
        results[4].event_id, results[2].event_id,
        "a key used twice in one batch: the first wins"
    );
    let new: std::collections::HashSet<_> = [&results[0], &results[2], &results[3]]
        .iter()
        .map(|r| r.event_id.clone())
        .chain([first.event_id.clone()])
        .collect();
    assert_eq!(new.len(), 4, "each new event has its own id: {results:?}");

    // One request per stored event (n = 0, 1, 3, 4), each body once.
    let bodies = sorted_bodies(&world.receiver, 4, Duration::from_secs(15)).await;
    assert_eq!(
        bodies,
        [r#"{"n":0}"#, r#"{"n":1}"#, r#"{"n":3}"#, r#"{"n":4}"#]
    );
    for result in [&results[0], &results[2], &results[3]] {
        delivery_with_status(
            &client,
            result.delivery_id.as_deref().unwrap(),
            dpb::DeliveryStatus::Delivered,
            Duration::from_secs(10),
        )
        .await;
    }
    assert_eq!(
        world.receiver.requests().len(),
        4,
        "nothing delivered twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_delivered_and_redelivery_sends_again() {
    let mut world = World::start().await;
    let url = world.receiver.url("/hooks");
    let (partner, _) = world.partner_with_callback(&url, None).await;
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    let mut client = dispatcher.client.clone();
    let events: Vec<_> = (0..50)
        .map(|i| publish(&partner, &format!(r#"{{"n":{i}}}"#)))
        .collect();
    let published = client
        .publish_batch(dpb::PublishBatchRequest { events })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(published.results.len(), 50);
    let mut bodies = sorted_bodies(&world.receiver, 50, Duration::from_secs(15)).await;
    bodies.dedup();
    assert_eq!(bodies.len(), 50, "each event once");

    let id = published.results[0].delivery_id.clone().unwrap();
    delivery_with_status(
        &client,
        &id,
        dpb::DeliveryStatus::Delivered,
        Duration::from_secs(5),
    )
    .await;
    let redelivered = client
        .redeliver(dpb::RedeliverRequest {
            delivery_id: id.clone(),
            partner_id: Some(partner.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(redelivered.status(), dpb::DeliveryStatus::Pending);
    world
        .receiver
        .wait_for_requests(51, Duration::from_secs(10))
        .await
        .unwrap();
    let delivery = delivery_with_status(
        &client,
        &id,
        dpb::DeliveryStatus::Delivered,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(delivery.attempt_count, 2);
    // Another partner cannot see or redeliver it.
    let stranger = uuid::Uuid::new_v4().to_string();
    let hidden = client
        .get_delivery(dpb::GetDeliveryRequest {
            delivery_id: id.clone(),
            partner_id: Some(stranger.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), tonic::Code::NotFound);

    let listed = client
        .list_deliveries(dpb::ListDeliveriesRequest {
            partner_id: partner.clone(),
            notification_type: Some(TYPE),
            status: Some(dpb::DeliveryStatus::Delivered.into()),
            page_number: 1,
            page_size: 20,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.deliveries.len(), 20);
    assert!(listed.has_next_page && !listed.has_previous_page);
    // Newest first (the log is listed through the events' index).
    let created: Vec<_> = listed
        .deliveries
        .iter()
        .map(|d| {
            let at = d.created_at.as_ref().expect("created_at is set");
            (at.seconds, at.nanos)
        })
        .collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "{created:?}");
}
