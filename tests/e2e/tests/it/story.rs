//! The partner's story end to end, and restarts that lose nothing.

use std::collections::HashSet;
use std::time::Duration;

use callbacks_proto::dispatcher::v1 as dpb;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use test_support::{Reply, eventually};

use crate::System;

pub(crate) async fn publish_many(
    system: &System,
    partner: &str,
    count: usize,
    tag: &str,
) -> HashSet<String> {
    let mut publisher = system.publisher().await;
    let events = (0..count)
        .map(|i| dpb::PublishRequest {
            partner_id: partner.to_owned(),
            notification_type: 5,
            payload_json: format!(r#"{{"processUniqueId":"{tag}-{i}","tag":"{tag}","n":{i}}}"#),
            idempotency_key: None,
            occurred_at: None,
            ordering_key: None,
        })
        .collect();
    let published = publisher
        .publish_batch(dpb::PublishBatchRequest { events })
        .await
        .unwrap()
        .into_inner();
    published
        .results
        .into_iter()
        .map(|r| r.delivery_id.unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_story() {
    let system = System::start().await;
    let (partner, key) = system.partner_with_callback("/acme").await;

    // A platform service publishes over gRPC.
    let payload = r#"{"processUniqueId": "p-1", "amount": 42}"#;
    let mut publisher = system.publisher().await;
    let published = publisher
        .publish(dpb::PublishRequest {
            partner_id: partner.clone(),
            notification_type: 5,
            payload_json: payload.into(),
            idempotency_key: Some("evt-1".into()),
            occurred_at: None,
            ordering_key: None,
        })
        .await
        .unwrap()
        .into_inner();
    let delivery_id = published.delivery_id.unwrap();

    // The receiver gets it, signed, with the partner's credentials.
    let request = system
        .receiver
        .wait_for_requests(1, Duration::from_secs(15))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(request.body.as_ref(), payload.as_bytes());
    assert_eq!(request.header("webhook-id"), Some(delivery_id.as_str()));
    assert!(
        request
            .header("authorization")
            .unwrap()
            .starts_with("Basic ")
    );
    let secret: Value = system
        .rest(&key, Method::GET, &format!("/{partner}/callbacks/5/secret"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    standardwebhooks::Webhook::new(secret["secret"].as_str().unwrap())
        .unwrap()
        .verify(&request.body, &request.headers)
        .expect("the signature verifies");

    // The partner reads the delivery log over REST.
    let log: Value = eventually(
        "the delivery to be logged as delivered",
        Duration::from_secs(10),
        || {
            let request = system.rest(
                &key,
                Method::GET,
                &format!("/{partner}/callbacks/5/deliveries"),
            );
            async move {
                let log: Value = request.send().await.ok()?.json().await.ok()?;
                (log["results"][0]["status"] == "delivered").then_some(log)
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(log["results"][0]["deliveryId"], delivery_id.as_str());
    let one: Value = system
        .rest(
            &key,
            Method::GET,
            &format!("/v1/callbacks/deliveries/{delivery_id}"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["attempts"][0]["responseStatus"], 200);

    // An echo reaches the receiver with the raw body.
    let raw = r#"{"simulationUniqueId":"sim-1"}"#;
    let echo = system
        .rest(
            &key,
            Method::POST,
            &format!("/v1/callbacks/echo/{partner}/5"),
        )
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(echo.status(), StatusCode::ACCEPTED);
    let requests = system
        .receiver
        .wait_for_requests(2, Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(requests[1].body.as_ref(), raw.as_bytes());
    assert_eq!(requests[0].header("partner-callbacks-test"), None);
    assert_eq!(requests[1].header("partner-callbacks-test"), Some("true"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_any_service_loses_nothing() {
    let mut system = System::start().await;
    system
        .receiver
        .set_global_default(Reply::ok().after(Duration::from_millis(50)));
    let (partner, key) = system.partner_with_callback("/acme").await;
    let mut expected = HashSet::new();

    // The gateway is stateless: after a restart the partner carries on.
    system.gateway.restart().await.unwrap();
    let listed = system
        .rest(&key, Method::GET, &format!("/{partner}/callbacks"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);

    // The registry goes down: publishing goes on, delivery waits for it.
    system.registry.stop().await.unwrap();
    expected.extend(publish_many(&system, &partner, 20, "registry-down").await);
    system.registry.start_again().await.unwrap();
    system.all_arrive(&expected, Duration::from_secs(30)).await;

    // The dispatcher is killed mid-delivery, then started again.
    let batch = publish_many(&system, &partner, 100, "dispatcher-killed").await;
    let before = system.receiver.requests().len();
    system
        .receiver
        .wait_for_requests(before + 10, Duration::from_secs(15))
        .await
        .unwrap();
    system.dispatcher.kill().await.unwrap();
    system.dispatcher.start_again().await.unwrap();
    expected.extend(batch);
    system.all_arrive(&expected, Duration::from_secs(60)).await;

    // A graceful restart in the middle of deliveries.
    let batch = publish_many(&system, &partner, 100, "dispatcher-restarted").await;
    let before = system.receiver.requests().len();
    system
        .receiver
        .wait_for_requests(before + 10, Duration::from_secs(15))
        .await
        .unwrap();
    system.dispatcher.restart().await.unwrap();
    expected.extend(batch);
    system.all_arrive(&expected, Duration::from_secs(60)).await;

    let received = system.receiver.requests().len();
    eprintln!(
        "restarts: {} deliveries expected, all arrived; {} requests in all ({} duplicates)",
        expected.len(),
        received,
        received - expected.len()
    );
}
