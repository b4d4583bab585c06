//! Issue 23, item 1: retention. Once the period has passed since a
//! delivery's last attempt, its event, delivery and attempts are gone from
//! the raw tables, and an event nobody subscribed to is gone too; a pending
//! delivery stays whatever its age.

use std::time::Duration;

use callbacks_proto::dispatcher::v1 as dpb;
use test_support::Reply;
use tonic::Code;

use crate::{World, delivery_with_status, publish, publish_one};

/// How many rows of each table name `event`, by its id (events), its
/// delivery (deliveries, attempts).
async fn rows_of(db: &tokio_postgres::Client, event: &str) -> (i64, i64, i64) {
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM events WHERE id = $1::text::uuid),
                    (SELECT count(*) FROM deliveries WHERE event_id = $1::text::uuid),
                    (SELECT count(*) FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
                     WHERE d.event_id = $1::text::uuid)",
            &[&event],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_retention_period_lets_go_is_removed_and_pending_deliveries_stay() {
    let mut world = World::start().await;
    world.receiver.set_default("/down", Reply::status(500));
    let (healthy, _) = world
        .partner_with_callback(&world.receiver.url("/hooks"), None)
        .await;
    let (failing, _) = world
        .partner_with_callback(&world.receiver.url("/down"), None)
        .await;
    let unsubscribed = world.partner().await;
    let mut config = world.dispatcher_config();
    // The pending delivery's next attempt is an hour away.
    config.retry_schedule = "1h".into();
    config.retention = Some(Duration::from_secs(2));
    let dispatcher = world.start_dispatcher(config).await;
    let client = dispatcher.client.clone();

    // The pending one first: older than the delivered one, it is looked at
    // by the same removal.
    let pending_id = publish_one(&client, &failing, r#"{"n":2}"#).await;
    let delivered_id = publish_one(&client, &healthy, r#"{"n":1}"#).await;
    let delivered = delivery_with_status(
        &client,
        &delivered_id,
        dpb::DeliveryStatus::Delivered,
        Duration::from_secs(10),
    )
    .await;
    let lonely = client
        .clone()
        .publish(publish(&unsubscribed, r#"{"n":3}"#))
        .await
        .unwrap()
        .into_inner();
    assert!(lonely.delivery_id.is_none());
    let db = world.dispatch_db.client().await.unwrap();
    assert_eq!(rows_of(&db, &delivered.event_id).await, (1, 1, 1));

    test_support::eventually(
        "the delivered event removed",
        Duration::from_secs(20),
        || {
            let (db, delivered, lonely) = (&db, &delivered.event_id, &lonely.event_id);
            async move {
                let gone =
                    rows_of(db, delivered).await == (0, 0, 0) && rows_of(db, lonely).await.0 == 0;
                gone.then_some(())
            }
        },
    )
    .await
    .unwrap();
    let missing = client
        .clone()
        .get_delivery(dpb::GetDeliveryRequest {
            delivery_id: delivered_id,
            partner_id: None,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    // Older than the period too, but pending: it stays, with its attempt.
    let pending = delivery_with_status(
        &client,
        &pending_id,
        dpb::DeliveryStatus::Pending,
        Duration::from_secs(5),
    )
    .await;
    let since = db
        .query_one(
            "SELECT extract(epoch FROM now() - created_at)::float8 FROM events WHERE id = $1::text::uuid",
            &[&pending.event_id],
        )
        .await
        .unwrap()
        .get::<_, f64>(0);
    assert!(since > 2.0, "the pending event is {since} s old");
    assert_eq!(rows_of(&db, &pending.event_id).await, (1, 1, 1));
}
