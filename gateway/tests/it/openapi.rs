//! The OpenAPI document: served, 3.1, generated from the same route table
//! the gateway serves, with every documented operation answering something
//! other than "no such route". (`deploy/run-tests.sh` also runs a real
//! OpenAPI validator over it.)

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::Stack;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_lists_every_route_served() {
    let stack = Stack::start().await;
    let response = stack
        .request(Method::GET, "/openapi.json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();

    let expected = [
        ("/{partnerUniqueID}/callbacks", "get"),
        ("/{partnerUniqueID}/callbacks/{notificationType}", "put"),
        ("/{partnerUniqueID}/callbacks/{notificationType}", "get"),
        ("/{partnerUniqueID}/callbacks/{notificationType}", "delete"),
        (
            "/{partnerUniqueID}/callbacks/{notificationType}/secret",
            "get",
        ),
        (
            "/{partnerUniqueID}/callbacks/{notificationType}/secret/rotate",
            "post",
        ),
        (
            "/v1/callbacks/echo/{partnerUniqueID}/{notificationTypeID}",
            "post",
        ),
        ("/v1/callbacks/registrations/{registrationId}", "get"),
        ("/v1/callbacks/deliveries/{deliveryId}", "get"),
        ("/v1/callbacks/deliveries/{deliveryId}/redeliver", "post"),
        (
            "/{partnerUniqueID}/callbacks/{notificationType}/deliveries",
            "get",
        ),
        ("/v1/admin/partners", "post"),
        ("/v1/admin/partners", "get"),
        ("/v1/admin/partners/{partnerUniqueID}", "get"),
        ("/v1/admin/partners/{partnerUniqueID}/keys", "post"),
        ("/v1/admin/partners/{partnerUniqueID}/keys", "get"),
        (
            "/v1/admin/partners/{partnerUniqueID}/keys/{keyId}",
            "delete",
        ),
        ("/v1/admin/partners/{partnerUniqueID}/portal-links", "post"),
        ("/v1/admin/notification-types", "get"),
        ("/v1/admin/notification-types", "post"),
        (
            "/v1/admin/notification-types/{notificationTypeId}/payload-schema",
            "put",
        ),
        (
            "/v1/admin/notification-types/{notificationTypeId}/payload-schema",
            "delete",
        ),
        ("/v1/callbacks/notification-types", "get"),
        (
            "/{partnerUniqueID}/callbacks/{notificationType}/pause",
            "post",
        ),
        (
            "/{partnerUniqueID}/callbacks/{notificationType}/resume",
            "post",
        ),
        ("/v1/callbacks/recoveries/{partnerUniqueID}", "post"),
        ("/v1/callbacks/events/{eventId}/payload", "delete"),
        ("/v1/callbacks/payloads/{partnerUniqueID}", "delete"),
        (
            "/v1/callbacks/recoveries/{partnerUniqueID}/{recoveryId}",
            "get",
        ),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/openapi.json", "get"),
        ("/metrics", "get"),
    ];
    let documented: usize = paths
        .values()
        .map(|ops| ops.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        expected.len(),
        "documented paths: {:?}",
        paths.keys().collect::<Vec<_>>()
    );

    let guid = uuid::Uuid::new_v4().to_string();
    for (path, method) in expected {
        let operation = &paths[path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        let responses = operation["responses"].as_object().unwrap();
        // The limits' answers: 429 with Retry-After wherever a partner's
        // rate counts, 408 and 503 wherever the request guard applies.
        let partner_route = operation["security"].to_string().contains("partnerApiKey");
        assert_eq!(
            responses.contains_key("429"),
            partner_route,
            "{method} {path}: 429 documented exactly on partner routes"
        );
        if partner_route {
            assert!(responses["429"]["headers"]["Retry-After"].is_object());
        }
        if path != "/healthz" {
            assert!(responses.contains_key("408"), "{method} {path}: 408");
            assert!(responses.contains_key("503"), "{method} {path}: 503");
        }
        // The route is really served: a concrete request reaches a handler
        // (which may refuse it), never the "no such route" fallback.
        let concrete = path
            .replace("{partnerUniqueID}", &guid)
            .replace("{notificationType}", "5")
            .replace("{notificationTypeID}", "5")
            .replace("{keyId}", &guid)
            .replace("{deliveryId}", &guid)
            .replace("{recoveryId}", &guid)
            .replace("{eventId}", &guid);
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let response = stack
            .request(method.clone(), &concrete)
            .send()
            .await
            .unwrap();
        assert_ne!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {concrete}"
        );
        if response.status() == StatusCode::NOT_FOUND {
            let body: Value = response.json().await.unwrap();
            assert_ne!(
                body["detail"], "no such route",
                "{method} {concrete} is not served"
            );
        }
    }
    // Every error response is a problem document.
    let problem = &doc["components"]["schemas"]["Problem"];
    assert!(problem["properties"]["requestId"].is_object());
}
