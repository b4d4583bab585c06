//! The test notification route: the seed's rule (exactly one of
//! processUniqueId and simulationUniqueId), echo-able types only, 404
//! without an active registration, and 503 while no dispatcher is wired.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{ADMIN_KEY, Stack, URL, expect_invalid, expect_problem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_rule_and_its_errors() {
    let stack = Stack::start().await;
    let (partner, key) = stack.partner("Acme").await;
    stack
        .put_callback(&key, &partner, 5, json!({"callBackUrl": URL}))
        .await;
    let echo = |kind: &str, body: &str| {
        stack
            .as_key(
                &key,
                Method::POST,
                &format!("/v1/callbacks/echo/{partner}/{kind}"),
            )
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
    };

    // Both, or neither: 400 naming both fields.
    let both = echo(
        "5",
        r#"{"processUniqueId":"p-1","simulationUniqueId":"s-1"}"#,
    )
    .await
    .unwrap();
    expect_invalid(both, "processUniqueId", "exactly one").await;
    let neither = echo("5", r#"{"amount":10}"#).await.unwrap();
    expect_invalid(neither, "simulationUniqueId", "exactly one").await;
    // Not an object, not JSON.
    expect_problem(echo("5", "[1,2,3]").await.unwrap(), StatusCode::BAD_REQUEST).await;
    expect_problem(echo("5", "{oops").await.unwrap(), StatusCode::BAD_REQUEST).await;
    // Not an integer type.
    expect_invalid(
        echo("five", r#"{"processUniqueId":"p"}"#).await.unwrap(),
        "notificationTypeID",
        "integer",
    )
    .await;
    // A type outside the catalogue, and one that is not echo-able.
    expect_invalid(
        echo("99", r#"{"processUniqueId":"p"}"#).await.unwrap(),
        "notificationTypeID",
        "not a supported",
    )
    .await;
    let created = stack
        .as_key(ADMIN_KEY, Method::POST, "/v1/admin/notification-types")
        .json(&json!({"notificationTypeId": 12, "name": "settlement.completed", "echoable": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    stack
        .put_callback(&key, &partner, 12, json!({"callBackUrl": URL}))
        .await;
    expect_invalid(
        echo("12", r#"{"processUniqueId":"p"}"#).await.unwrap(),
        "notificationTypeID",
        "cannot be echoed",
    )
    .await;
    // No active registration for an echo-able type.
    expect_problem(
        echo("6", r#"{"processUniqueId":"p"}"#).await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    // Wrong content type.
    let plain = stack
        .as_key(
            &key,
            Method::POST,
            &format!("/v1/callbacks/echo/{partner}/5"),
        )
        .header("content-type", "text/plain")
        .body(r#"{"processUniqueId":"p"}"#)
        .send()
        .await
        .unwrap();
    expect_problem(plain, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;

    // A valid request: no dispatcher is configured yet, so a clear 503.
    let valid = echo("5", r#"{"simulationUniqueId":"s-1","payload":{"x":1}}"#)
        .await
        .unwrap();
    let problem = expect_problem(valid, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(problem["detail"].as_str().unwrap().contains("dispatcher"));
}
