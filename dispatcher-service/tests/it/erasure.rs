//! Issue 23, item 1: erasing payloads. The payload is gone from the raw
//! table, the delivery and its attempts stay as metadata, a pending
//! delivery is cancelled, and nothing erased is sent again (redelivery,
//! recovery); unknown events and repeated erasures are answered clearly.

use std::time::Duration;

use callbacks_proto::dispatcher::v1 as dpb;
use test_support::Reply;
use tonic::Code;

use crate::{World, delivery_with_status, publish_one};

async fn erase(
    client: &mut dpb::dispatcher_service_client::DispatcherServiceClient<tonic::transport::Channel>,
    event: &str,
    partner: Option<&str>,
) -> Result<dpb::Erasure, tonic::Status> {
    client
        .erase_event(dpb::EraseEventRequest {
            event_id: event.into(),
            partner_id: partner.map(Into::into),
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_payload_is_gone_and_its_record_stays() {
    let mut world = World::start().await;
    world.receiver.set_default("/down", Reply::status(500));
    let url = world.receiver.url("/down");
    let (partner, _) = world.partner_with_callback(&url, None).await;
    let mut config = world.dispatcher_config();
    // Long waits: the second delivery is still pending when it is erased.
    config.retry_schedule = "1h".into();
    let dispatcher = world.start_dispatcher(config).await;
    let mut client = dispatcher.client.clone();

    let failed_id = publish_one(&client, &partner, r#"{"secret":"first-7731"}"#).await;
    let pending_id = publish_one(&client, &partner, r#"{"secret":"second-7732"}"#).await;
    let attempted = |id: String| {
        let client = client.clone();
        async move {
            test_support::eventually("an attempt", Duration::from_secs(10), || {
                let mut client = client.clone();
                let request = dpb::GetDeliveryRequest {
                    delivery_id: id.clone(),
                    partner_id: None,
                };
                async move {
                    let d = client.get_delivery(request).await.ok()?.into_inner();
                    (d.attempt_count >= 1).then_some(d)
                }
            })
            .await
            .unwrap()
        }
    };
    let pending = attempted(pending_id.clone()).await;
    assert_eq!(pending.status(), dpb::DeliveryStatus::Pending);
    attempted(failed_id.clone()).await;

    let erased = erase(&mut client, &pending.event_id, Some(&partner))
        .await
        .unwrap();
    assert_eq!((erased.erased_events, erased.cancelled_deliveries), (1, 1));
    let cancelled = delivery_with_status(
        &client,
        &pending_id,
        dpb::DeliveryStatus::Cancelled,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(cancelled.attempts.len(), 1, "its attempts stay");
    let again = erase(&mut client, &pending.event_id, None).await.unwrap();
    assert_eq!((again.erased_events, again.cancelled_deliveries), (0, 0));

    // The raw table: no payload left, and when it was erased.
    let db = world.dispatch_db.client().await.unwrap();
    let row = db
        .query_one(
            "SELECT payload, erased_at IS NOT NULL FROM events WHERE id = $1::text::uuid",
            &[&pending.event_id],
        )
        .await
        .unwrap();
    assert!(row.get::<_, Vec<u8>>(0).is_empty());
    assert!(row.get::<_, bool>(1));

    // The rest of the partner's payloads, at once; then none is sent again.
    // The endpoint's error state made a health notification (type 900) for
    // the partner too: wait for it, so that what is erased is known.
    let partner_id = uuid::Uuid::parse_str(&partner).unwrap();
    test_support::eventually("the health notification", Duration::from_secs(10), || {
        let db = &db;
        async move {
            let n: i64 = db
                .query_one(
                    "SELECT count(*) FROM events WHERE partner_id = $1 AND notification_type = 900",
                    &[&partner_id],
                )
                .await
                .ok()?
                .get(0);
            (n == 1).then_some(())
        }
    })
    .await
    .unwrap();
    let all = client
        .erase_partner_payloads(dpb::ErasePartnerPayloadsRequest {
            partner_id: partner.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        all.erased_events, 2,
        "the first event's and the health notification's; the second's was already"
    );
    let dump = db
        .query_one(
            "SELECT count(*) FROM events WHERE position('7731'::bytea IN payload) > 0 \
             OR position('7732'::bytea IN payload) > 0",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(dump.get::<_, i64>(0), 0, "no payload left in the table");
    let refused = client
        .redeliver(dpb::RedeliverRequest {
            delivery_id: pending_id.clone(),
            partner_id: None,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("erased"), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_what_is_not_there_is_refused_clearly() {
    let mut world = World::start().await;
    let url = world.receiver.url("/ok");
    let (partner, _) = world.partner_with_callback(&url, None).await;
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    let mut client = dispatcher.client.clone();
    let id = publish_one(&client, &partner, "{}").await;
    let delivered = delivery_with_status(
        &client,
        &id,
        dpb::DeliveryStatus::Delivered,
        Duration::from_secs(10),
    )
    .await;

    let unknown = erase(&mut client, &uuid::Uuid::new_v4().to_string(), None).await;
    assert_eq!(unknown.unwrap_err().code(), Code::NotFound);
    let others = uuid::Uuid::new_v4().to_string();
    let foreign = erase(&mut client, &delivered.event_id, Some(&others)).await;
    assert_eq!(
        foreign.unwrap_err().code(),
        Code::NotFound,
        "not another partner's"
    );
    let malformed = erase(&mut client, "not-a-guid", None).await.unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
    let erased = erase(&mut client, &delivered.event_id, Some(&partner))
        .await
        .unwrap();
    assert_eq!((erased.erased_events, erased.cancelled_deliveries), (1, 0));
}
