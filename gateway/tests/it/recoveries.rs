//! Recovery in bulk over REST: a dry run (200), a job (202) whose progress
//! is read at its statusUrl, and the mistakes a partner can make.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Stack, URL, expect_invalid, expect_problem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_recovers_its_own_deliveries() {
    let stack = Stack::with_delivery().await;
    let (partner, key) = stack.partner("Acme").await;
    let (other, other_key) = stack.partner("Globex").await;
    stack
        .put_callback(&key, &partner, 5, json!({"callBackUrl": URL}))
        .await;
    let recover = |body: Value| {
        stack
            .as_key(
                &key,
                Method::POST,
                &format!("/v1/callbacks/recoveries/{partner}"),
            )
            .json(&body)
    };
    let range = json!({"since": "2026-01-01T00:00:00Z", "until": "2026-02-01T00:00:00Z"});

    let mut dry = range.clone();
    dry["dryRun"] = json!(true);
    dry["notificationType"] = json!(5);
    let planned = recover(dry).send().await.unwrap();
    assert_eq!(planned.status(), StatusCode::OK);
    let planned: Value = planned.json().await.unwrap();
    assert_eq!(planned["state"], "planned");
    assert_eq!(planned["total"], 0);
    assert!(planned["recoveryId"].is_null() && planned["statusUrl"].is_null());

    let started = recover(range.clone()).send().await.unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let started: Value = started.json().await.unwrap();
    let status_url = started["statusUrl"].as_str().unwrap().to_owned();
    assert_eq!(started["state"], "done", "nothing failed in that month");

    let read = stack
        .as_key(&key, Method::GET, &status_url)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let read: Value = read.json().await.unwrap();
    assert_eq!(read["recoveryId"], started["recoveryId"]);

    // Another partner can neither read it nor recover for this one.
    let id = started["recoveryId"].as_str().unwrap();
    let foreign = stack
        .as_key(
            &other_key,
            Method::GET,
            &format!("/v1/callbacks/recoveries/{other}/{id}"),
        )
        .send()
        .await
        .unwrap();
    expect_problem(foreign, StatusCode::NOT_FOUND).await;
    let trespass = stack
        .as_key(
            &other_key,
            Method::POST,
            &format!("/v1/callbacks/recoveries/{partner}"),
        )
        .json(&range)
        .send()
        .await
        .unwrap();
    expect_problem(trespass, StatusCode::FORBIDDEN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_recoveries_are_refused_by_field() {
    let stack = Stack::with_delivery().await;
    let (partner, key) = stack.partner("Acme").await;
    let recover = |body: Value| {
        stack
            .as_key(
                &key,
                Method::POST,
                &format!("/v1/callbacks/recoveries/{partner}"),
            )
            .json(&body)
            .send()
    };
    let empty = json!({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"});
    expect_invalid(recover(empty).await.unwrap(), "until", "the range is empty").await;
    let long = json!({"since": "2026-01-01T00:00:00Z", "until": "2026-06-01T00:00:00Z"});
    expect_invalid(recover(long).await.unwrap(), "until", "at most 90 days").await;
    let no_until = json!({"since": "2026-01-01T00:00:00Z"});
    expect_problem(recover(no_until).await.unwrap(), StatusCode::BAD_REQUEST).await;
    let bad_type = json!({"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z", "notificationType": 0});
    expect_invalid(recover(bad_type).await.unwrap(), "notificationType", "").await;
    let malformed = stack
        .as_key(
            &key,
            Method::GET,
            &format!("/v1/callbacks/recoveries/{partner}/nope"),
        )
        .send()
        .await
        .unwrap();
    expect_problem(malformed, StatusCode::BAD_REQUEST).await;
}
