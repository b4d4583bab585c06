//! The test notification route: the seed's rule (exactly one of
//! processUniqueId and simulationUniqueId, the seeded types' payload
//! schema, applied by the dispatcher), an operator's schema for a type,
//! echo-able types only, 404 without an active registration, and 503
//! while no dispatcher is wired.

use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::{ADMIN_KEY, Stack, URL, expect_invalid, expect_problem};

/// `POST /v1/callbacks/echo/{partner}/{kind}` with a JSON `body`.
fn echo_request(
    stack: &Stack,
    key: &str,
    partner: &str,
    kind: &str,
    body: &str,
) -> reqwest::RequestBuilder {
    stack
        .as_key(
            key,
            Method::POST,
            &format!("/v1/callbacks/echo/{partner}/{kind}"),
        )
        .header("content-type", "application/json")
        .body(body.to_owned())
}

/// The `invalidParams` of a 400 problem, as (name, reason) pairs.
async fn violations(response: Response) -> Vec<(String, String)> {
    let problem = expect_problem(response, StatusCode::BAD_REQUEST).await;
    problem["invalidParams"]
        .as_array()
        .unwrap_or_else(|| panic!("no invalidParams in {problem}"))
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_types_payload_schema_decides_what_an_echo_may_send() {
    let stack = Stack::with_delivery().await;
    let receiver = &stack.delivery.as_ref().unwrap().receiver;
    let (partner, key) = stack.partner("Acme").await;
    let echo = |kind: i32, body: &str| {
        echo_request(&stack, &key, &partner, &kind.to_string(), body).send()
    };
    let created = stack
        .put_callback(
            &key,
            &partner,
            5,
            json!({"callBackUrl": receiver.url("/5")}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);

    // The seeds' rule: both ids, neither, or not an object is a 400 that
    // names the body and says what the schema requires.
    for body in [
        r#"{"processUniqueId":"p-1","simulationUniqueId":"s-1"}"#,
        r#"{"amount":10}"#,
        r#"{"processUniqueId":null}"#,
        "[1,2,3]",
    ] {
        let found = violations(echo(5, body).await.unwrap()).await;
        assert!(
            found.iter().any(|(name, reason)| name == "rawBody"
                && reason.starts_with("at /: ")
                && reason.contains("Exactly one of processUniqueId and simulationUniqueId")),
            "{body}: {found:?}"
        );
    }
    assert_eq!(
        echo(5, r#"{"simulationUniqueId":"s-1","processUniqueId":null}"#)
            .await
            .unwrap()
            .status(),
        StatusCode::ACCEPTED
    );

    // An operator's schema for a type of their own names every violation
    // by its place in the body, and never quotes the body.
    let schema = json!({
        "type": "object",
        "required": ["orderId", "amount"],
        "properties": {"orderId": {"type": "string", "format": "uuid"}, "amount": {"type": "integer", "minimum": 0}}
    });
    let added = stack
        .as_key(ADMIN_KEY, Method::POST, "/v1/admin/notification-types")
        .json(&json!({"notificationTypeId": 40, "name": "order.paid", "echoable": true, "payloadSchema": schema}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    stack
        .put_callback(
            &key,
            &partner,
            40,
            json!({"callBackUrl": receiver.url("/40")}),
        )
        .await;
    let found = violations(
        echo(
            40,
            r#"{"orderId":"not-a-uuid-secret","amount":-5,"extra":true}"#,
        )
        .await
        .unwrap(),
    )
    .await;
    let places: Vec<&str> = found
        .iter()
        .map(|(name, reason)| {
            assert_eq!(name, "rawBody");
            assert!(!reason.contains("not-a-uuid-secret"), "{reason}");
            reason.split(':').next().unwrap()
        })
        .collect();
    assert_eq!(places, ["at /amount", "at /orderId"], "{found:?}");
    assert_eq!(
        violations(echo(40, r#"{"amount":1}"#).await.unwrap())
            .await
            .len(),
        1
    );
    let good = r#"{"orderId":"7c0e5d5e-2b1e-4f7a-9d0e-2f4b5c6d7e8f","amount":12}"#;
    assert_eq!(echo(40, good).await.unwrap().status(), StatusCode::ACCEPTED);
    let arrived = receiver
        .wait_for_requests_to("/40", 1, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(arrived[0].body.as_ref(), good.as_bytes());

    // Removed, the schema no longer applies; partners read the catalogue.
    let path = "/v1/admin/notification-types/40/payload-schema";
    let removed = stack
        .as_key(ADMIN_KEY, Method::DELETE, path)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::OK);
    test_support::eventually(
        "the schema's removal applies",
        Duration::from_secs(5),
        || async { (echo(40, "[]").await.unwrap().status() == StatusCode::ACCEPTED).then_some(()) },
    )
    .await
    .unwrap();
    let catalogue: Value = stack
        .as_key(&key, Method::GET, "/v1/callbacks/notification-types")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let by_id = |id: i64| {
        catalogue["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["notificationTypeId"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_id(40)["payloadSchema"], Value::Null);
    assert_eq!(by_id(5)["payloadSchema"]["type"], "object");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_set_schemas_that_compile_and_only_operators() {
    let stack = Stack::start().await;
    let (_, key) = stack.partner("Acme").await;
    let path = "/v1/admin/notification-types/5/payload-schema";
    let put = |key: &str, body: Value| stack.as_key(key, Method::PUT, path).json(&body).send();
    expect_problem(
        put(&key, json!({"type": "object"})).await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect_invalid(
        put(ADMIN_KEY, json!({"type": "objects"})).await.unwrap(),
        "payloadSchema",
        "not a valid JSON Schema",
    )
    .await;
    expect_invalid(
        put(
            ADMIN_KEY,
            json!({"$ref": "https://example.com/remote.json"}),
        )
        .await
        .unwrap(),
        "payloadSchema",
        "cannot be compiled",
    )
    .await;
    expect_problem(
        stack
            .as_key(
                ADMIN_KEY,
                Method::PUT,
                "/v1/admin/notification-types/77/payload-schema",
            )
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let set: Value = put(ADMIN_KEY, json!({"type": "object", "minProperties": 1}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        set["payloadSchema"],
        json!({"type": "object", "minProperties": 1})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routes_errors() {
    let stack = Stack::start().await;
    let (partner, key) = stack.partner("Acme").await;
    stack
        .put_callback(&key, &partner, 5, json!({"callBackUrl": URL}))
        .await;
    let echo = |kind: &str, body: &str| echo_request(&stack, &key, &partner, kind, body).send();

    // Not JSON.
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
