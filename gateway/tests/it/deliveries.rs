//! The whole system through the public API: an echo reaches the partner's
//! endpoint with the raw body, signed; the partner reads the delivery log
//! and redelivers; another partner sees none of it.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::eventually;

use crate::{Stack, expect_invalid, expect_problem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_reaches_the_receiver_and_the_log_tells() {
    let stack = Stack::with_delivery().await;
    let receiver = &stack.delivery.as_ref().unwrap().receiver;
    let (partner, key) = stack.partner("Acme").await;
    let (other, other_key) = stack.partner("Globex").await;
    let url = receiver.url("/acme/hooks");
    let created = stack
        .put_callback(
            &key,
            &partner,
            5,
            json!({"callBackUrl": url, "callBackUserName": "acme", "callBackPassword": "pw"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);

    let raw_body = "{\"simulationUniqueId\": \"sim-7\",\n  \"status\":\"done\"}";
    let accepted = stack
        .as_key(
            &key,
            Method::POST,
            &format!("/v1/callbacks/echo/{partner}/5"),
        )
        .header("content-type", "application/json")
        .body(raw_body)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let accepted: Value = accepted.json().await.unwrap();
    let delivery_id = accepted["deliveryId"].as_str().unwrap().to_owned();
    assert_eq!(
        accepted["deliveryUrl"],
        format!("/v1/callbacks/deliveries/{delivery_id}")
    );

    let request = receiver
        .wait_for_requests(1, Duration::from_secs(10))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        request.body.as_ref(),
        raw_body.as_bytes(),
        "the rawBody, byte for byte"
    );
    assert_eq!(request.header("webhook-id"), Some(delivery_id.as_str()));
    assert_eq!(
        request.header("partner-callbacks-test"),
        Some("true"),
        "an echo says it is a test"
    );
    assert!(
        request
            .header("authorization")
            .unwrap()
            .starts_with("Basic ")
    );
    let secret: Value = stack
        .as_key(&key, Method::GET, &format!("/{partner}/callbacks/5/secret"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    standardwebhooks::Webhook::new(secret["secret"].as_str().unwrap())
        .unwrap()
        .verify(&request.body, &request.headers)
        .expect("the echo is signed like any delivery");

    // The delivery log, over REST.
    let path = format!("/v1/callbacks/deliveries/{delivery_id}");
    let delivered: Value = eventually(
        "the echo to be marked delivered",
        Duration::from_secs(5),
        || {
            let request = stack.as_key(&key, Method::GET, &path);
            async move {
                let body: Value = request.send().await.ok()?.json().await.ok()?;
                (body["status"] == "delivered").then_some(body)
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(delivered["isTest"], true);
    assert_eq!(delivered["attempts"][0]["responseStatus"], 200);
    assert!(delivered["attempts"][0]["failureKind"].is_null());
    let listed: Value = stack
        .as_key(
            &key,
            Method::GET,
            &format!("/{partner}/callbacks/5/deliveries?status=delivered"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["results"][0]["deliveryId"], delivery_id.as_str());

    // Redelivery sends it again.
    let again = stack
        .as_key(&key, Method::POST, &format!("{path}/redeliver"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    // The answer is the state the redelivery made, even when the worker
    // has already sent it again: due now, with the first attempt's log.
    let redelivered: Value = again.json().await.unwrap();
    assert_eq!(redelivered["status"], "pending", "{redelivered}");
    assert!(redelivered["nextAttemptAt"].is_string(), "{redelivered}");
    assert_eq!(redelivered["attempts"].as_array().map(Vec::len), Some(1));
    receiver
        .wait_for_requests(2, Duration::from_secs(10))
        .await
        .unwrap();

    // Another partner's key: not found, never the delivery.
    expect_problem(
        stack
            .as_key(&other_key, Method::GET, &path)
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_problem(
        stack
            .as_key(&other_key, Method::POST, &format!("{path}/redeliver"))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_problem(
        stack
            .as_key(
                &other_key,
                Method::GET,
                &format!("/{partner}/callbacks/5/deliveries"),
            )
            .send()
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    let _ = other;

    // Bad ids and queries are 400s.
    expect_problem(
        stack
            .as_key(&key, Method::GET, "/v1/callbacks/deliveries/not-a-guid")
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    expect_problem(
        stack
            .as_key(
                &key,
                Method::GET,
                &format!("/{partner}/callbacks/5/deliveries?status=lost"),
            )
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
}

/// The delivery log filtered by when the events were published: `since`
/// inclusive, `until` exclusive; a bad time refused by field, a range that
/// ends before it starts empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_filtered_by_publish_time() {
    let stack = Stack::with_delivery().await;
    let receiver = &stack.delivery.as_ref().unwrap().receiver;
    let (partner, key) = stack.partner("Acme").await;
    let created = stack
        .put_callback(
            &key,
            &partner,
            5,
            json!({"callBackUrl": receiver.url("/t")}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let echo = stack
        .as_key(
            &key,
            Method::POST,
            &format!("/v1/callbacks/echo/{partner}/5"),
        )
        .header("content-type", "application/json")
        .body(r#"{"processUniqueId":"p-1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(echo.status(), StatusCode::ACCEPTED);
    let listed = |query: String| {
        let request = stack.as_key(
            &key,
            Method::GET,
            &format!("/{partner}/callbacks/5/deliveries?{query}"),
        );
        async move { request.send().await.unwrap() }
    };
    let count = |page: Value| page["results"].as_array().unwrap().len();
    let hour = chrono::Duration::hours(1);
    let (before, after) = (chrono::Utc::now() - hour, chrono::Utc::now() + hour);
    let time = |t: chrono::DateTime<chrono::Utc>| {
        url::form_urlencoded::byte_serialize(t.to_rfc3339().as_bytes()).collect::<String>()
    };

    let within = listed(format!("since={}&until={}", time(before), time(after))).await;
    assert_eq!(count(within.json().await.unwrap()), 1);
    let later = listed(format!("since={}", time(after))).await;
    assert_eq!(count(later.json().await.unwrap()), 0);
    let earlier = listed(format!("until={}", time(before))).await;
    assert_eq!(count(earlier.json().await.unwrap()), 0);

    expect_invalid(listed("since=yesterday".into()).await, "since", "RFC 3339").await;
    let backwards = format!("since={}&until={}", time(after), time(before));
    assert_eq!(count(listed(backwards).await.json().await.unwrap()), 0);
}
