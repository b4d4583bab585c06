//! Issue 19, items 1–4, through the real binaries: what a partner changes
//! over REST applies to the very next event published over gRPC (the
//! dispatcher keeps resolutions for an hour here, so only the registry's
//! change log can make them current), and an endpoint answering a NUL
//! byte fails only its own delivery.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::{Reply, eventually};

use crate::{System, unkeyed};

async fn publish(system: &System, partner: &str) -> Option<String> {
    system
        .publisher()
        .await
        .publish(unkeyed(partner, "p-1"))
        .await
        .unwrap()
        .into_inner()
        .delivery_id
}

async fn arrivals(system: &System, path: &str, n: usize) {
    system
        .receiver
        .wait_for_requests_to(path, n, Duration::from_secs(15))
        .await
        .unwrap();
}

/// The delivery, as the partner reads it, once it is `status`.
async fn delivery_when(system: &System, key: &str, id: &str, status: &str) -> Value {
    eventually(
        &format!("delivery {id} to be {status}"),
        Duration::from_secs(20),
        || async move {
            let delivery = system
                .get_json(key, &format!("/v1/callbacks/deliveries/{id}"))
                .await?;
            (delivery["status"] == status).then_some(delivery)
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_over_rest_applies_to_the_next_event() {
    let system = System::start().await;
    let (partner, key) = system.partner_with_callback("/old").await;
    publish(&system, &partner).await.unwrap();
    arrivals(&system, "/old", 1).await;

    let put = |path: &str| {
        system
            .rest(&key, Method::PUT, &format!("/{partner}/callbacks/5"))
            .json(&json!({"callBackUrl": system.receiver.url(path)}))
            .send()
    };
    assert_eq!(put("/new").await.unwrap().status(), StatusCode::OK);
    publish(&system, &partner).await.unwrap();
    arrivals(&system, "/new", 1).await;
    assert_eq!(system.receiver.requests_to("/old").len(), 1);

    let deleted = system
        .rest(&key, Method::DELETE, &format!("/{partner}/callbacks/5"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    if let Some(id) = publish(&system, &partner).await {
        let cancelled = delivery_when(&system, &key, &id, "cancelled").await;
        assert_eq!(cancelled["attemptCount"], 0, "{cancelled}");
    }
    assert_eq!(
        system.receiver.requests_to("/new").len(),
        1,
        "nothing pushed after the delete"
    );

    assert_eq!(put("/again").await.unwrap().status(), StatusCode::CREATED);
    publish(&system, &partner)
        .await
        .expect("a registration answered before the publish counts");
    arrivals(&system, "/again", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_byte_in_an_answer_fails_only_its_own_delivery() {
    let system = System::start().await;
    system
        .receiver
        .set_default("/nul", Reply::status(500).body(&b"x\0y"[..]));
    let (nul_partner, nul_key) = system.partner_with_callback("/nul").await;
    let mut healthy = Vec::new();
    for i in 0..5 {
        healthy.push(system.partner_with_callback(&format!("/ok-{i}")).await.0);
    }
    let nul_id = publish(&system, &nul_partner).await.unwrap();
    for partner in &healthy {
        publish(&system, partner).await.unwrap();
    }

    // The schedule: six retries, then failed.
    let failed = delivery_when(&system, &nul_key, &nul_id, "failed").await;
    let attempts = failed["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 7, "{failed}");
    assert!(
        attempts
            .iter()
            .all(|a| a["responseStatus"] == 500 && a["responseExcerpt"] == "x\u{FFFD}y")
    );
    for i in 0..healthy.len() {
        assert_eq!(
            system.receiver.requests_to(&format!("/ok-{i}")).len(),
            1,
            "a healthy endpoint receives its event once"
        );
    }
}
