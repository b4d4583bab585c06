//! Publish's contract: durable, validated, and an event without a
//! subscriber is stored but not delivered.

use callbacks_proto::dispatcher::v1 as dpb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::{TYPE, World, publish};

fn field_of(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|d| d.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_publishes_are_invalid_argument() {
    let mut world = World::start().await;
    let url = world.receiver.url("/hooks");
    let (partner, _) = world.partner_with_callback(&url, None).await;
    let mut config = world.dispatcher_config();
    config.max_payload_bytes = 1024;
    let dispatcher = world.start_dispatcher(config).await;
    let mut client = dispatcher.client.clone();

    let cases = [
        (publish(&partner, "{not json"), "payload_json"),
        (publish(&partner, ""), "payload_json"),
        (
            publish(&partner, &format!(r#"{{"x":"{}"}}"#, "a".repeat(2000))),
            "payload_json",
        ),
        (publish("nope", "{}"), "partner_id"),
        (
            dpb::PublishRequest {
                notification_type: 0,
                ..publish(&partner, "{}")
            },
            "notification_type",
        ),
        (
            dpb::PublishRequest {
                notification_type: 99,
                ..publish(&partner, "{}")
            },
            "notification_type",
        ),
        (
            dpb::PublishRequest {
                idempotency_key: Some(String::new()),
                ..publish(&partner, "{}")
            },
            "idempotency_key",
        ),
        // Postgres text cannot hold NUL: refused up front, not INTERNAL.
        (
            dpb::PublishRequest {
                idempotency_key: Some("order\u{0}42".into()),
                ..publish(&partner, "{}")
            },
            "idempotency_key",
        ),
        // Before year 1: chrono holds it, Postgres does not.
        (
            dpb::PublishRequest {
                occurred_at: Some(prost_types::Timestamp {
                    seconds: -200_000_000_000,
                    nanos: 0,
                }),
                ..publish(&partner, "{}")
            },
            "occurred_at",
        ),
    ];
    for (request, field) in cases {
        let status = client.publish(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(field_of(&status), [field], "{status:?}");
    }
    let empty = client
        .publish_batch(dpb::PublishBatchRequest { events: vec![] })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    let mixed = client
        .publish_batch(dpb::PublishBatchRequest {
            events: vec![publish(&partner, "{}"), publish(&partner, "{oops")],
        })
        .await
        .unwrap_err();
    assert_eq!(mixed.code(), Code::InvalidArgument);
    assert!(
        mixed.message().contains("[1].payload_json"),
        "{}",
        mixed.message()
    );

    // Nothing of the refused calls was stored.
    let db = world.dispatch_db.client().await.unwrap();
    let events: i64 = db
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(events, 0);
}

/// A message over the cap is refused as gRPC's status table says, before
/// it is read, and costs no other call anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_cap_is_resource_exhausted() {
    let mut world = World::start().await;
    let url = world.receiver.url("/hooks");
    let (partner, _) = world.partner_with_callback(&url, None).await;
    let mut config = world.dispatcher_config();
    config.max_message_bytes = 64 * 1024;
    let dispatcher = world.start_dispatcher(config).await;
    let mut client = dispatcher.client.clone();

    let event = |size: usize| publish(&partner, &format!(r#"{{"x":"{}"}}"#, "a".repeat(size)));
    let status = client.publish(event(100 * 1024)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let batch = dpb::PublishBatchRequest {
        events: (0..10).map(|_| event(10 * 1024)).collect(),
    };
    let status = client.publish_batch(batch).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    let accepted = client.publish(event(10 * 1024)).await.unwrap().into_inner();
    assert!(accepted.delivery_id.is_some(), "{accepted:?}");
    let stored = world
        .dispatch_db
        .count("SELECT count(*) FROM events")
        .await
        .unwrap();
    assert_eq!(stored, 1, "only the message under the cap is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_subscriber_the_event_is_stored_undelivered() {
    let mut world = World::start().await;
    let url = world.receiver.url("/hooks");
    let (partner, _) = world.partner_with_callback(&url, None).await;
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    let mut client = dispatcher.client.clone();

    let other_type = dpb::PublishRequest {
        notification_type: 6,
        ..publish(&partner, r#"{"processUniqueId":"p-1"}"#)
    };
    let stored = client.publish(other_type).await.unwrap().into_inner();
    assert!(stored.delivery_id.is_none());
    assert!(!stored.event_id.is_empty());

    let db = world.dispatch_db.client().await.unwrap();
    let row = db
        .query_one(
            "SELECT has_subscriber, notification_type FROM events WHERE id = $1::text::uuid",
            &[&stored.event_id],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0));
    assert_eq!(row.get::<_, i32>(1), 6);
    let deliveries: i64 = db
        .query_one("SELECT count(*) FROM deliveries", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(deliveries, 0);
    let _ = TYPE;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_does_not_depend_on_the_registry() {
    let mut world = World::start().await;
    let (partner, _) = world
        .partner_with_callback(&world.receiver.url("/hooks"), None)
        .await;
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    let mut client = dispatcher.client.clone();
    world.stop_registry();
    let registry_down = test_support::eventually(
        "the registry to stop answering",
        std::time::Duration::from_secs(5),
        || {
            let mut registry = world.registry.clone();
            async move {
                registry
                    .list_notification_types(
                        callbacks_proto::registry::v1::ListNotificationTypesRequest {},
                    )
                    .await
                    .is_err()
                    .then_some(())
            }
        },
    )
    .await;
    assert!(registry_down.is_ok());

    // Accepted and stored with a delivery, which waits for the registry.
    let stored = client
        .publish(publish(&partner, r#"{"n":1}"#))
        .await
        .unwrap()
        .into_inner();
    let delivery_id = stored.delivery_id.expect("stored for delivery");
    let delivery = client
        .get_delivery(dpb::GetDeliveryRequest {
            delivery_id,
            partner_id: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(delivery.status(), dpb::DeliveryStatus::Pending);
    assert_eq!(
        delivery.attempt_count, 0,
        "not attempted blind, not dropped"
    );
}

/// Issue 23, item 1: an idempotency key is remembered for its window, then
/// forgotten: a repeat inside the window is the first event, one after it
/// a new event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_is_forgotten_after_its_window() {
    use std::time::Duration;
    let mut world = World::start().await;
    let url = world.receiver.url("/hooks");
    let (partner, _) = world.partner_with_callback(&url, None).await;
    let mut config = world.dispatcher_config();
    config.idempotency_window = Duration::from_secs(2);
    let dispatcher = world.start_dispatcher(config).await;
    let mut client = dispatcher.client.clone();
    let keyed = || {
        let mut request = publish(&partner, "{}");
        request.idempotency_key = Some("order-42".into());
        request
    };

    let first = client.publish(keyed()).await.unwrap().into_inner();
    let repeat = client.publish(keyed()).await.unwrap().into_inner();
    assert!(repeat.duplicate && repeat.event_id == first.event_id);

    let db = world.dispatch_db.client().await.unwrap();
    test_support::eventually("the key forgotten", Duration::from_secs(15), || {
        let db = &db;
        let id = first.event_id.clone();
        async move {
            let row = db
                .query_one(
                    "SELECT idempotency_key IS NULL FROM events WHERE id = $1::text::uuid",
                    &[&id],
                )
                .await
                .ok()?;
            row.get::<_, bool>(0).then_some(())
        }
    })
    .await
    .unwrap();
    let later = client.publish(keyed()).await.unwrap().into_inner();
    assert!(!later.duplicate, "after the window, a new event");
    assert_ne!(later.event_id, first.event_id);
}
