//! The operator endpoints: partners, their keys, notification types.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{ADMIN_KEY, Stack, expect_invalid, expect_problem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_and_keys() {
    let stack = Stack::start().await;
    let created = stack
        .as_key(ADMIN_KEY, Method::POST, "/v1/admin/partners")
        .json(&json!({"name": "Acme", "keyLabel": "production"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    let partner = created["partner"]["partnerUniqueId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(created["apiKey"]["label"], "production");
    assert!(
        created["apiKey"]["token"]
            .as_str()
            .unwrap()
            .starts_with("pcb_")
    );

    let fetched: Value = stack
        .as_key(
            ADMIN_KEY,
            Method::GET,
            &format!("/v1/admin/partners/{partner}"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["name"], "Acme");
    let listed: Value = stack
        .as_key(ADMIN_KEY, Method::GET, "/v1/admin/partners?pageSize=10")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["results"].as_array().unwrap().len(), 1);

    let issued = stack
        .as_key(
            ADMIN_KEY,
            Method::POST,
            &format!("/v1/admin/partners/{partner}/keys"),
        )
        .json(&json!({"label": "staging"}))
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status(), StatusCode::CREATED);
    let issued: Value = issued.json().await.unwrap();
    let token = issued["token"].as_str().unwrap();
    // The new key works on the partner's own paths.
    let own = stack
        .as_key(token, Method::GET, &format!("/{partner}/callbacks"))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::OK);

    let keys = stack
        .as_key(
            ADMIN_KEY,
            Method::GET,
            &format!("/v1/admin/partners/{partner}/keys"),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!keys.contains(token), "tokens are never listed");
    let keys: Value = serde_json::from_str(&keys).unwrap();
    assert_eq!(keys["results"].as_array().unwrap().len(), 2);

    let unknown = uuid::Uuid::new_v4();
    expect_problem(
        stack
            .as_key(
                ADMIN_KEY,
                Method::GET,
                &format!("/v1/admin/partners/{unknown}"),
            )
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_problem(
        stack
            .as_key(
                ADMIN_KEY,
                Method::DELETE,
                &format!("/v1/admin/partners/{partner}/keys/{unknown}"),
            )
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let blank = stack
        .as_key(ADMIN_KEY, Method::POST, "/v1/admin/partners")
        .json(&json!({"name": "  "}))
        .send()
        .await
        .unwrap();
    expect_invalid(blank, "name", "required").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_types() {
    let stack = Stack::start().await;
    let listed: Value = stack
        .as_key(ADMIN_KEY, Method::GET, "/v1/admin/notification-types")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<_> = listed["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["notificationTypeId"].clone())
        .collect();
    assert_eq!(
        ids,
        [json!(5), json!(6), json!(7), json!(900)],
        "900: callback.health"
    );

    let body = json!({"notificationTypeId": 12, "name": "settlement.completed", "description": "A settlement finished"});
    let created = stack
        .as_key(ADMIN_KEY, Method::POST, "/v1/admin/notification-types")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["echoable"], false);
    let duplicate = stack
        .as_key(ADMIN_KEY, Method::POST, "/v1/admin/notification-types")
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_problem(duplicate, StatusCode::CONFLICT).await;
    let bad = stack
        .as_key(ADMIN_KEY, Method::POST, "/v1/admin/notification-types")
        .json(&json!({"notificationTypeId": 0, "name": "Bad Name"}))
        .send()
        .await
        .unwrap();
    let problem = expect_invalid(bad, "notificationTypeId", "positive").await;
    assert!(
        problem["invalidParams"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "name")
    );
}

/// Bodies are read as the OpenAPI document's JSON Schema reads them
/// (schemathesis found each of these): an array is not an object, `41.0`
/// is an integer, and a bound is on the text as sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_read_as_their_schema_says() {
    let stack = Stack::start().await;
    let post = |path: &str, body: Value| {
        stack
            .as_key(ADMIN_KEY, Method::POST, path)
            .json(&body)
            .send()
    };
    let created: Value = post("/v1/admin/partners", json!({"name": "Acme"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let partner = created["partner"]["partnerUniqueId"].as_str().unwrap();
    let keys = format!("/v1/admin/partners/{partner}/keys");
    let array = post(&keys, json!([])).await.unwrap();
    let problem = expect_problem(array, StatusCode::BAD_REQUEST).await;
    assert!(problem["detail"].as_str().unwrap().contains("JSON object"));

    let integral = post(
        "/v1/admin/notification-types",
        json!({"notificationTypeId": 41.0, "name": "settlement.done"}),
    )
    .await
    .unwrap();
    assert_eq!(integral.status(), StatusCode::CREATED);
    let fractional = post(
        "/v1/admin/notification-types",
        json!({"notificationTypeId": 42.5, "name": "settlement.undone"}),
    )
    .await
    .unwrap();
    expect_problem(fractional, StatusCode::BAD_REQUEST).await;

    // 101 characters as sent, though only spaces: over the documented 100.
    let padded = post(&keys, json!({"label": " ".repeat(101)}))
        .await
        .unwrap();
    expect_invalid(padded, "label", "at most 100 characters").await;
    let trimmed: Value = post(&keys, json!({"label": "  ci  "}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(trimmed["label"], "ci");
}
