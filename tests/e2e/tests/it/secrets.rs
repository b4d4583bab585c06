//! Secrets at rest, with the real binaries. After partners register
//! callbacks with passwords, read and rotate their signing secrets, and get
//! deliveries, `pg_dump` of both databases holds none of the passwords,
//! signing secrets or API keys in clear; then the sealing key is rotated
//! (`registry-service reseal`) and the old key retired, and every secret
//! reads as before.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{ENCRYPTION_KEY, System};

/// The key the rotation moves to.
const NEW_KEY: &str = "ZTJlLXRlc3RzLXJvdGF0ZWQta2V5LTMyLWJ5dGVzISE=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_of_either_database_holds_no_secret_in_clear() {
    let mut system = System::start().await;
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

    let before = secrets_of(&system, &key, &partner).await;
    rotate_the_key(&mut system).await;
    assert_eq!(secrets_of(&system, &key, &partner).await, before);
    let dumps = system.dumps().await;
    for needle in &needles {
        assert!(
            !dumps[0].contains(needle.as_str()),
            "a secret in clear after re-sealing"
        );
    }
}

/// The three types' signing secrets, as the partner reads them.
async fn secrets_of(system: &System, key: &str, partner: &str) -> Vec<Value> {
    let mut all = Vec::new();
    for kind in [5, 6, 7] {
        let path = format!("/{partner}/callbacks/{kind}/secret");
        let response = system.rest(key, Method::GET, &path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        all.push(response.json().await.unwrap());
    }
    all
}

/// The runbook of docs/operations.md: the new key current with the old one
/// kept, `reseal` beside the running registry, then the old key removed.
async fn rotate_the_key(system: &mut System) {
    system
        .registry
        .restart_with(&[
            ("REGISTRY_ENCRYPTION_KEY", NEW_KEY),
            ("REGISTRY_OLD_ENCRYPTION_KEYS", ENCRYPTION_KEY),
        ])
        .await
        .unwrap();
    let resealed = system.registry.run_command(&["reseal"]).await.unwrap();
    let printed = String::from_utf8_lossy(&resealed.stdout);
    assert!(
        resealed.status.success(),
        "{printed} {}",
        String::from_utf8_lossy(&resealed.stderr)
    );
    // The report is the line after the service's log lines.
    let resealed: u32 = printed
        .lines()
        .find_map(|line| line.strip_prefix("re-sealed "))
        .and_then(|rest| rest.split_once(' '))
        .and_then(|(count, _)| count.parse().ok())
        .unwrap_or_else(|| panic!("{printed}"));
    assert!(resealed >= 3, "{printed}");
    assert!(printed.contains("; 0 left under other keys"), "{printed}");
    system
        .registry
        .restart_with(&[("REGISTRY_OLD_ENCRYPTION_KEYS", "")])
        .await
        .unwrap();
}
