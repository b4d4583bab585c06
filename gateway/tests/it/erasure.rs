//! Erasing payloads over REST: a partner erases one of its events' payload
//! or all of them; the delivery stays readable, a redelivery is refused,
//! and another partner can touch none of it.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Stack, expect_problem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_erases_its_payloads() {
    let stack = Stack::with_delivery().await;
    let receiver = &stack.delivery.as_ref().unwrap().receiver;
    let (partner, key) = stack.partner("Acme").await;
    let (_, other_key) = stack.partner("Globex").await;
    let url = receiver.url("/acme");
    stack
        .put_callback(&key, &partner, 5, json!({"callBackUrl": url}))
        .await;
    let echo: Value = stack
        .as_key(
            &key,
            Method::POST,
            &format!("/v1/callbacks/echo/{partner}/5"),
        )
        .json(&json!({"processUniqueId": "erase-me-4242"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let delivery_url = echo["deliveryUrl"].as_str().unwrap().to_owned();
    let delivered = test_support::eventually("the echo delivered", Duration::from_secs(10), || {
        let request = stack.as_key(&key, Method::GET, &delivery_url);
        async move {
            let d: Value = request.send().await.ok()?.json().await.ok()?;
            (d["status"] == "delivered").then_some(d)
        }
    })
    .await
    .unwrap();
    let event = delivered["eventId"].as_str().unwrap().to_owned();
    let erase_path = format!("/v1/callbacks/events/{event}/payload");

    let foreign = stack
        .as_key(&other_key, Method::DELETE, &erase_path)
        .send()
        .await
        .unwrap();
    expect_problem(foreign, StatusCode::NOT_FOUND).await;
    let erased = stack
        .as_key(&key, Method::DELETE, &erase_path)
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), StatusCode::OK);
    let erased: Value = erased.json().await.unwrap();
    assert_eq!(erased, json!({"erasedEvents": 1, "cancelledDeliveries": 0}));
    let again: Value = stack
        .as_key(&key, Method::DELETE, &erase_path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["erasedEvents"], 0);

    let record = stack
        .as_key(&key, Method::GET, &delivery_url)
        .send()
        .await
        .unwrap();
    assert_eq!(
        record.status(),
        StatusCode::OK,
        "the delivery stays readable"
    );
    let redeliver = stack
        .as_key(&key, Method::POST, &format!("{delivery_url}/redeliver"))
        .send()
        .await
        .unwrap();
    let problem = expect_problem(redeliver, StatusCode::CONFLICT).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("erased"),
        "{problem}"
    );

    let trespass = stack
        .as_key(
            &other_key,
            Method::DELETE,
            &format!("/v1/callbacks/payloads/{partner}"),
        )
        .send()
        .await
        .unwrap();
    expect_problem(trespass, StatusCode::FORBIDDEN).await;
    let all: Value = stack
        .as_key(
            &key,
            Method::DELETE,
            &format!("/v1/callbacks/payloads/{partner}"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["erasedEvents"], 0, "the only event was erased already");
    let malformed = stack
        .as_key(&key, Method::DELETE, "/v1/callbacks/events/nope/payload")
        .send()
        .await
        .unwrap();
    expect_problem(malformed, StatusCode::BAD_REQUEST).await;
}
