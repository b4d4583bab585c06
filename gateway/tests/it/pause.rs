//! Pausing and resuming a callback over REST: the body is optional, a
//! second pause or a resume of what is not paused is a 409 that changes
//! nothing, and another partner cannot touch it.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Stack, URL, expect_invalid, expect_problem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_is_paused_and_resumed() {
    let stack = Stack::start().await;
    let (partner, key) = stack.partner("Acme").await;
    let (_, other_key) = stack.partner("Globex").await;
    let created = stack
        .put_callback(&key, &partner, 5, json!({"callBackUrl": URL}))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let post = |key: &str, action: &str| {
        stack.as_key(
            key,
            Method::POST,
            &format!("/{partner}/callbacks/5/{action}"),
        )
    };

    let not_paused = post(&key, "resume").send().await.unwrap();
    expect_problem(not_paused, StatusCode::CONFLICT).await;

    // No body at all.
    let paused = post(&key, "pause").send().await.unwrap();
    assert_eq!(paused.status(), StatusCode::OK);
    let paused: Value = paused.json().await.unwrap();
    assert!(paused["pausedAt"].is_string(), "{paused}");
    assert_eq!(paused["pauseReason"], "paused");
    assert_eq!(paused["isActive"], true);

    let twice = post(&key, "pause")
        .json(&json!({"reason": "again"}))
        .send()
        .await
        .unwrap();
    let problem = expect_problem(twice, StatusCode::CONFLICT).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("already paused"),
        "{problem}"
    );
    let foreign = post(&other_key, "resume").send().await.unwrap();
    expect_problem(foreign, StatusCode::FORBIDDEN).await;

    let resumed = post(&key, "resume").send().await.unwrap();
    assert_eq!(resumed.status(), StatusCode::OK);
    let resumed: Value = resumed.json().await.unwrap();
    assert!(resumed["pausedAt"].is_null() && resumed["pauseReason"].is_null());

    let explained = post(&key, "pause")
        .json(&json!({"reason": "maintenance until 18:00 UTC"}))
        .send()
        .await
        .unwrap();
    let explained: Value = explained.json().await.unwrap();
    assert_eq!(explained["pauseReason"], "maintenance until 18:00 UTC");

    let shown: Value = stack
        .as_key(&key, Method::GET, &format!("/{partner}/callbacks/5"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["pauseReason"], "maintenance until 18:00 UTC");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pauses_are_refused_clearly() {
    let stack = Stack::start().await;
    let (partner, key) = stack.partner("Acme").await;
    let post = |body: Option<Value>| {
        let request = stack.as_key(&key, Method::POST, &format!("/{partner}/callbacks/5/pause"));
        match body {
            Some(body) => request.json(&body),
            None => request,
        }
    };
    let unregistered = post(None).send().await.unwrap();
    expect_problem(unregistered, StatusCode::NOT_FOUND).await;

    stack
        .put_callback(&key, &partner, 5, json!({"callBackUrl": URL}))
        .await;
    let long = post(Some(json!({"reason": "x".repeat(501)})))
        .send()
        .await
        .unwrap();
    expect_invalid(long, "reason", "at most 500 characters").await;
    let unknown = post(Some(json!({"why": "x"}))).send().await.unwrap();
    expect_problem(unknown, StatusCode::BAD_REQUEST).await;
    let not_json = post(None)
        .header("content-type", "text/plain")
        .body("pause")
        .send()
        .await
        .unwrap();
    expect_problem(not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
}
