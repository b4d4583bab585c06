//! Issue 20, item 9 (in part): what a backup holds. After partners register
//! callbacks with passwords, read and rotate their signing secrets, and get
//! deliveries, `pg_dump` of both databases holds none of the passwords,
//! signing secrets or API keys in clear.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::System;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_of_either_database_holds_no_secret_in_clear() {
    let system = System::start().await;
    let (partner, key) = system.partner_with_callback("/acme").await;
    let mut needles = vec![key.clone()];
    for kind in [5, 6, 7] {
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        let put = system
            .rest(&key, Method::PUT, &format!("/{partner}/callbacks/{kind}"))
            .json(&json!({
                "callBackUrl": system.receiver.url(&format!("/t{kind}")),
                "callBackUserName": "acme",
                "callBackPassword": password,
            }))
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success());
        needles.push(password);
        let rotated = system
            .rest(
                &key,
                Method::POST,
                &format!("/{partner}/callbacks/{kind}/secret/rotate"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(rotated.status(), StatusCode::OK);
        let secrets: Value = system
            .rest(
                &key,
                Method::GET,
                &format!("/{partner}/callbacks/{kind}/secret"),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for field in ["secret", "previousSecret"] {
            let secret = secrets[field]
                .as_str()
                .unwrap_or_else(|| panic!("{field} in {secrets}"));
            needles.push(secret.trim_start_matches("whsec_").to_owned());
        }
        let echo = system
            .rest(
                &key,
                Method::POST,
                &format!("/v1/callbacks/echo/{partner}/{kind}"),
            )
            .header("content-type", "application/json")
            .body(r#"{"processUniqueId":"p-1"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(echo.status(), StatusCode::ACCEPTED);
    }
    system
        .receiver
        .wait_for_requests(3, Duration::from_secs(15))
        .await
        .unwrap();

    let dumps = system.dumps().await;
    assert!(
        dumps[0].contains("registrations"),
        "a real dump of the registry"
    );
    assert!(
        dumps[1].contains("deliveries"),
        "a real dump of the dispatcher"
    );
    for needle in &needles {
        for (name, dump) in ["registry", "dispatcher"].iter().zip(&dumps) {
            assert!(
                !dump.contains(needle.as_str()),
                "the {name} dump holds a secret in clear"
            );
        }
    }
}
