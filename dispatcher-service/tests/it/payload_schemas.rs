//! Payload schemas at publish: a payload that breaks its type's schema is
//! refused with every violation named, in a single publish, a batch (by
//! index, nothing of the batch stored) and a test notification; a schema an
//! operator sets or removes applies within `CATALOGUE_LAG` of the answer.

use std::time::Duration;

use callbacks_proto::dispatcher::v1 as dpb;
use callbacks_proto::registry::v1 as rpb;
use dispatcher_service::registry::CATALOGUE_LAG;
use tonic::Code;
use tonic_types::StatusExt;

use crate::{SCHEMA_TYPE, TYPE, World, publish};

/// The violations of an `INVALID_ARGUMENT`, as (field, description) pairs.
fn violations(status: &tonic::Status) -> Vec<(String, String)> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .expect("a BadRequest detail")
        .field_violations
        .into_iter()
        .map(|v| (v.field, v.description))
        .collect()
}

fn of_type(partner: &str, kind: i32, payload: &str) -> dpb::PublishRequest {
    dpb::PublishRequest {
        notification_type: kind,
        ..publish(partner, payload)
    }
}

const EXACTLY_ONE: &str = "Exactly one of processUniqueId and simulationUniqueId";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_that_breaks_its_types_schema_is_refused_and_named() {
    let mut world = World::start().await;
    let partner = world.partner().await;
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    let mut client = dispatcher.client.clone();

    for payload in [
        r#"{"processUniqueId":"p","simulationUniqueId":"s"}"#,
        r#"{"amount":1}"#,
        "[]",
    ] {
        let status = client
            .publish(of_type(&partner, SCHEMA_TYPE, payload))
            .await
            .unwrap_err();
        let found = violations(&status);
        assert!(
            found.iter().any(|(f, d)| f == "payload_json"
                && d.starts_with("at /: ")
                && d.contains(EXACTLY_ONE)),
            "{payload}: {found:?}"
        );
    }
    let fine = client
        .publish(of_type(
            &partner,
            SCHEMA_TYPE,
            r#"{"simulationUniqueId":"s-1"}"#,
        ))
        .await;
    assert!(fine.is_ok(), "{fine:?}");

    // In a batch, each event is named by its index, and nothing is stored.
    let status = client
        .publish_batch(dpb::PublishBatchRequest {
            events: vec![
                of_type(&partner, SCHEMA_TYPE, r#"{"processUniqueId":"ok"}"#),
                of_type(&partner, SCHEMA_TYPE, "{}"),
                of_type(&partner, TYPE, "{}"),
                of_type(
                    &partner,
                    SCHEMA_TYPE,
                    r#"{"processUniqueId":1,"simulationUniqueId":2}"#,
                ),
            ],
        })
        .await
        .unwrap_err();
    let found = violations(&status);
    let named: Vec<&str> = found
        .iter()
        .map(|(field, description)| {
            assert_eq!(field, "events");
            description.split(' ').next().unwrap()
        })
        .collect();
    assert_eq!(named, ["[1].payload_json", "[3].payload_json"], "{found:?}");
    let events = world
        .dispatch_db
        .count("SELECT count(*) FROM events")
        .await
        .unwrap();
    assert_eq!(events, 1, "only the single valid publish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_notification_is_held_to_its_types_schema() {
    let mut world = World::start().await;
    let partner = world.partner().await;
    world
        .registry
        .upsert_callback(rpb::UpsertCallbackRequest {
            partner_id: partner.clone(),
            notification_type: SCHEMA_TYPE,
            callback_url: world.receiver.url("/echo"),
            callback_user_name: None,
            callback_password: None,
            merchant_id: None,
            retry_policy: None,
            signature_scheme: None,
        })
        .await
        .unwrap();
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    let send = |body: &str| dpb::SendTestNotificationRequest {
        partner_id: partner.clone(),
        notification_type: SCHEMA_TYPE,
        raw_body: body.as_bytes().to_vec(),
    };
    let status = dispatcher
        .client
        .clone()
        .send_test_notification(send(r#"{"processUniqueId":"p","simulationUniqueId":"s"}"#))
        .await
        .unwrap_err();
    let found = violations(&status);
    assert!(
        found.iter().all(|(f, _)| f == "raw_body") && found[0].1.contains(EXACTLY_ONE),
        "{found:?}"
    );
    dispatcher
        .client
        .clone()
        .send_test_notification(send(r#"{"processUniqueId":"p"}"#))
        .await
        .unwrap();
    world
        .receiver
        .wait_for_requests_to("/echo", 1, Duration::from_secs(10))
        .await
        .unwrap();
}

/// Publishes `request` until the dispatcher answers as `accepted` says,
/// failing past `deadline` (from now).
async fn until_answer(
    client: &dpb::dispatcher_service_client::DispatcherServiceClient<tonic::transport::Channel>,
    request: &dpb::PublishRequest,
    accepted: bool,
    deadline: Duration,
) {
    let answered = test_support::eventually("the schema change to apply", deadline, || {
        let (mut client, request) = (client.clone(), request.clone());
        async move {
            let answer = client.publish(request).await;
            if let Err(status) = &answer {
                assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            }
            (answer.is_ok() == accepted).then_some(())
        }
    })
    .await;
    assert!(answered.is_ok(), "{answered:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_schema_change_applies_within_the_catalogue_lag() {
    let mut world = World::start().await;
    let partner = world.partner().await;
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    let mut client = dispatcher.client.clone();
    let request = of_type(&partner, TYPE, r#"{"n":1}"#);
    client.publish(request.clone()).await.unwrap();

    let set = |schema: Option<&str>| rpb::SetPayloadSchemaRequest {
        notification_type_id: TYPE,
        payload_schema_json: schema.map(str::to_owned),
    };
    // A margin over the lag for the publish and sync round trips.
    let bound = CATALOGUE_LAG + Duration::from_millis(500);
    world
        .registry
        .set_payload_schema(set(Some(r#"{"required":["orderId"]}"#)))
        .await
        .unwrap();
    until_answer(&client, &request, false, bound).await;
    let status = client.publish(request.clone()).await.unwrap_err();
    assert!(
        violations(&status)[0]
            .1
            .contains("\"orderId\" is a required property")
    );

    world.registry.set_payload_schema(set(None)).await.unwrap();
    until_answer(&client, &request, true, bound).await;
}
