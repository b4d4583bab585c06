//! Issue 23, item 6, over REST: a registration's signature scheme, its
//! Ed25519 public key, rotations that keep several previous keys each for
//! its own time, and the refusals (an unknown scheme, a life over a week,
//! a sixth previous key).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Stack, URL, expect_invalid, expect_problem};

async fn json_of(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_picks_ed25519_and_rotates_with_overlapping_keys() {
    let stack = Stack::start().await;
    let (partner, key) = stack.partner("Acme").await;
    let created: Value = stack
        .put_callback(&key, &partner, 5, json!({"callBackUrl": URL}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(created["signatureScheme"], "hmac-sha256");
    let path = format!("/{partner}/callbacks/5/secret");
    let hmac = json_of(stack.as_key(&key, Method::GET, &path).send().await.unwrap()).await;
    assert_eq!(hmac["scheme"], "hmac-sha256");
    assert!(hmac["publicKey"].is_null());

    let switched: Value = stack
        .put_callback(
            &key,
            &partner,
            5,
            json!({"callBackUrl": URL, "signatureScheme": "ed25519"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(switched["signatureScheme"], "ed25519");
    let keys = json_of(stack.as_key(&key, Method::GET, &path).send().await.unwrap()).await;
    assert_eq!(keys["scheme"], "ed25519");
    assert!(keys["secret"].is_null(), "no secret to hold: {keys}");
    assert!(keys["publicKey"].as_str().unwrap().starts_with("whpk_"));
    assert_eq!(keys["previousKeys"][0]["secret"], hmac["secret"]);
    assert_eq!(keys["previousKeys"][0]["scheme"], "hmac-sha256");

    // A rotation with a life of its own; the body is optional.
    let rotated = json_of(
        stack
            .as_key(&key, Method::POST, &format!("{path}/rotate"))
            .json(&json!({"previousExpiresInSeconds": 600}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let previous = rotated["previousKeys"].as_array().unwrap();
    assert_eq!(previous.len(), 2, "{rotated}");
    assert_eq!(previous[0]["publicKey"], keys["publicKey"]);
    assert_eq!(
        rotated["previousSecret"], keys["publicKey"],
        "the newest, as before"
    );
    let plain = stack
        .as_key(&key, Method::POST, &format!("{path}/rotate"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_schemes_long_lives_and_a_sixth_previous_key_are_refused() {
    let stack = Stack::start().await;
    let (partner, key) = stack.partner("Acme").await;
    stack
        .put_callback(&key, &partner, 5, json!({"callBackUrl": URL}))
        .await;
    let unknown = stack
        .put_callback(
            &key,
            &partner,
            5,
            json!({"callBackUrl": URL, "signatureScheme": "rsa"}),
        )
        .await;
    let problem = expect_problem(unknown, StatusCode::BAD_REQUEST).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("signatureScheme"),
        "{problem}"
    );

    let rotate = format!("/{partner}/callbacks/5/secret/rotate");
    let too_long = stack
        .as_key(&key, Method::POST, &rotate)
        .json(&json!({"previousExpiresInSeconds": 604_801}))
        .send()
        .await
        .unwrap();
    expect_invalid(too_long, "previousExpiresInSeconds", "a week").await;
    for _ in 0..5 {
        let kept = stack
            .as_key(&key, Method::POST, &rotate)
            .json(&json!({"previousExpiresInSeconds": 3600}))
            .send()
            .await
            .unwrap();
        assert_eq!(kept.status(), StatusCode::OK);
    }
    let sixth = stack
        .as_key(&key, Method::POST, &rotate)
        .send()
        .await
        .unwrap();
    let problem = expect_problem(sixth, StatusCode::CONFLICT).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("expires at"),
        "{problem}"
    );
    let at_once = stack
        .as_key(&key, Method::POST, &rotate)
        .json(&json!({"previousExpiresInSeconds": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        at_once.status(),
        StatusCode::OK,
        "a leaked key is always droppable"
    );
}
