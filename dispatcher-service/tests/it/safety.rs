//! Outbound safety: a URL that resolves to a private address is refused at
//! delivery time unless its network is allow-listed, and a redirect (to a
//! private address or anywhere) is never followed.

use std::time::Duration;

use callbacks_proto::dispatcher::v1 as dpb;
use test_support::Reply;

use crate::{World, delivery_with_status, publish_one};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_addresses_are_refused_at_delivery_time() {
    let mut world = World::start().await;
    // The registry admits loopback (registration checks only what the URL
    // says); this dispatcher does not.
    let by_ip = world.receiver.url("/internal");
    let by_name = world.receiver.localhost_url("/internal");
    let (ip_partner, _) = world.partner_with_callback(&by_ip, None).await;
    let (name_partner, _) = world.partner_with_callback(&by_name, None).await;
    let mut config = world.dispatcher_config();
    config.allowed_callback_networks = vec![];
    let dispatcher = world.start_dispatcher(config).await;
    let client = dispatcher.client.clone();
    let ip_id = publish_one(&client, &ip_partner, "{}").await;
    let name_id = publish_one(&client, &name_partner, "{}").await;

    let by_ip = delivery_with_status(
        &client,
        &ip_id,
        dpb::DeliveryStatus::Failed,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        by_ip.attempts[0].error.as_deref(),
        Some("refused: 127.0.0.1 is a loopback address")
    );
    let by_name = delivery_with_status(
        &client,
        &name_id,
        dpb::DeliveryStatus::Failed,
        Duration::from_secs(10),
    )
    .await;
    let reason = by_name.attempts[0].error.clone().unwrap();
    assert!(
        reason.starts_with("refused: localhost resolves to no public address"),
        "{reason}"
    );
    assert!(
        world.receiver.requests().is_empty(),
        "nothing reached the private address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed() {
    let mut world = World::start().await;
    let target = world.receiver.url("/target");
    world
        .receiver
        .set_default("/moved", Reply::status(302).header("location", &target));
    world.receiver.set_default(
        "/to-private",
        Reply::status(307).header("location", "https://10.0.0.1/steal"),
    );
    let (moved_partner, _) = world
        .partner_with_callback(&world.receiver.url("/moved"), None)
        .await;
    let (private_partner, _) = world
        .partner_with_callback(&world.receiver.url("/to-private"), None)
        .await;
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    let client = dispatcher.client.clone();
    let moved = publish_one(&client, &moved_partner, "{}").await;
    let private = publish_one(&client, &private_partner, "{}").await;

    for id in [moved, private] {
        let failed = delivery_with_status(
            &client,
            &id,
            dpb::DeliveryStatus::Failed,
            Duration::from_secs(10),
        )
        .await;
        assert!(failed.attempts.iter().all(|a| {
            a.error
                .as_deref()
                .is_some_and(|e| e.ends_with("(redirects are not followed)"))
        }));
    }
    assert!(
        world.receiver.requests_to("/target").is_empty(),
        "the redirect target was never called"
    );
}
