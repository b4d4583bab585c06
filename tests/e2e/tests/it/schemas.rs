//! Payload schemas through the real binaries: the seeds' echo rule over
//! REST, and an operator's schema for a new type, set over REST and applied
//! by the dispatcher to an internal publisher's gRPC publishes.

use std::time::Duration;

use callbacks_proto::dispatcher::v1 as dpb;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::eventually;
use tonic::Code;
use tonic_types::StatusExt;

use crate::{ADMIN_KEY, System};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_types_schema_holds_echoes_and_publishes_alike() {
    let system = System::start().await;
    let (partner, key) = system.partner_with_callback("/acme").await;

    // The seeds' rule on an echo: both ids is a 400 naming the body.
    let echo = system
        .rest(
            &key,
            Method::POST,
            &format!("/v1/callbacks/echo/{partner}/5"),
        )
        .header("content-type", "application/json")
        .body(r#"{"processUniqueId":"p","simulationUniqueId":"s"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(echo.status(), StatusCode::BAD_REQUEST);
    let problem: Value = echo.json().await.unwrap();
    assert_eq!(problem["invalidParams"][0]["name"], "rawBody", "{problem}");

    // An operator adds type 31 with a schema; the partner registers for it.
    let added = system
        .rest(ADMIN_KEY, Method::POST, "/v1/admin/notification-types")
        .json(&json!({
            "notificationTypeId": 31,
            "name": "invoice.paid",
            "payloadSchema": {"type": "object", "required": ["invoiceId"], "properties": {"total": {"type": "number"}}}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    let registered = system
        .rest(&key, Method::PUT, &format!("/{partner}/callbacks/31"))
        .json(&json!({"callBackUrl": system.receiver.url("/invoices")}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);

    let publish = |payload: &str| dpb::PublishRequest {
        partner_id: partner.clone(),
        notification_type: 31,
        payload_json: payload.to_owned(),
        idempotency_key: None,
        occurred_at: None,
        ordering_key: None,
    };
    let mut publisher = system.publisher().await;
    let refused = publisher
        .publish(publish(r#"{"total":"12.50"}"#))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let mut named: Vec<String> = refused
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| format!("{} {}", v.field, v.description))
        .collect();
    named.sort();
    assert_eq!(named.len(), 2, "{named:?}");
    assert!(named[0].starts_with("payload_json at /: "), "{named:?}");
    assert!(named[0].contains("\"invoiceId\" is a required property"));
    assert!(
        named[1].starts_with("payload_json at /total: "),
        "{named:?}"
    );

    let good = r#"{"invoiceId":"inv-1","total":12.5}"#;
    let delivery = publisher
        .publish(publish(good))
        .await
        .unwrap()
        .into_inner()
        .delivery_id
        .unwrap();
    let arrived = system
        .receiver
        .wait_for_requests_to("/invoices", 1, Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(arrived[0].body.as_ref(), good.as_bytes());
    assert_eq!(arrived[0].header("webhook-id"), Some(delivery.as_str()));

    // Removed over REST, the schema stops applying.
    let removed = system
        .rest(
            ADMIN_KEY,
            Method::DELETE,
            "/v1/admin/notification-types/31/payload-schema",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::OK);
    let accepted = eventually("the removal to apply", Duration::from_secs(5), || {
        let mut publisher = publisher.clone();
        let request = publish(r#"{"total":"12.50"}"#);
        async move { publisher.publish(request).await.ok() }
    })
    .await;
    assert!(accepted.is_ok());
}
