//! Issue 23, item 2: health notifications. A registration that enters its
//! error state, and recovers, is announced once each (two replicas relay)
//! to the partner's own registration for type 900 and to the operators'
//! partner's, signed like any delivery.

use std::time::Duration;

use callbacks_proto::registry::v1 as rpb;
use test_support::Reply;

use crate::{World, publish_one};

const HEALTH: i32 = 900;

async fn subscribe(world: &mut World, partner: &str, url: String) -> String {
    world
        .registry
        .upsert_callback(rpb::UpsertCallbackRequest {
            partner_id: partner.into(),
            notification_type: HEALTH,
            callback_url: url,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .registration
        .unwrap()
        .registration_id
}

/// The `event` of each health notification that reached `path`, in order.
fn announced(world: &World, path: &str) -> Vec<serde_json::Value> {
    world
        .receiver
        .requests_to(path)
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entering_and_leaving_the_error_state_is_announced_once_to_partner_and_operators() {
    let mut world = World::start().await;
    world.receiver.set_default("/down", Reply::status(500));
    let (partner, registration) = world
        .partner_with_callback(&world.receiver.url("/down"), None)
        .await;
    let (health_url, ops_url) = (world.receiver.url("/health"), world.receiver.url("/ops"));
    subscribe(&mut world, &partner, health_url).await;
    let operators = world.partner().await;
    subscribe(&mut world, &operators, ops_url).await;
    let mut config = world.dispatcher_config();
    config.retry_schedule = "1h".into();
    config.health_operator_partner = Some(operators.parse().unwrap());
    let one = world.start_dispatcher(config.clone()).await;
    let _two = world.start_dispatcher(config).await;

    publish_one(&one.client, &partner, r#"{"n":1}"#).await;
    let entered = world
        .receiver
        .wait_for_requests_to("/health", 1, Duration::from_secs(20))
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&entered[0].body).unwrap();
    assert_eq!(body["event"], "error_state_entered");
    assert_eq!(body["registrationId"], registration.as_str());
    assert_eq!(body["notificationType"], 5);
    assert!(body["reason"].as_str().unwrap().contains("500"), "{body}");

    world.receiver.set_default("/down", Reply::ok());
    publish_one(&one.client, &partner, r#"{"n":2}"#).await;
    world
        .receiver
        .wait_for_requests_to("/health", 2, Duration::from_secs(20))
        .await
        .unwrap();
    world
        .receiver
        .wait_for_requests_to("/ops", 2, Duration::from_secs(20))
        .await
        .unwrap();
    // Time for a duplicate to show, if the two replicas both relayed.
    let settled = test_support::eventually("no third notification", Duration::from_secs(3), || {
        let n =
            world.receiver.requests_to("/health").len() + world.receiver.requests_to("/ops").len();
        async move { (n > 4).then_some(n) }
    })
    .await;
    assert!(
        settled.is_err(),
        "a health event was announced twice: {settled:?}"
    );
    for path in ["/health", "/ops"] {
        let events: Vec<_> = announced(&world, path)
            .iter()
            .map(|b| b["event"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(events, ["error_state_entered", "recovered"], "{path}");
    }
    // Signed like any delivery: with the health registration's secret.
    let secret = world
        .registry
        .get_signing_secret(rpb::GetSigningSecretRequest {
            partner_id: partner.clone(),
            notification_type: HEALTH,
        })
        .await
        .unwrap()
        .into_inner()
        .current;
    let request = &world.receiver.requests_to("/health")[0];
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&request.body, &request.headers)
        .expect("signed with the partner's health registration's secret");
}
