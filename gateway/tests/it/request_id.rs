//! X-Request-Id on every response: the caller's GUID is kept, anything else
//! is replaced by a new GUID, and problem documents quote it. Also the
//! problem documents of unknown routes and methods, and health.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::{Stack, expect_problem};

fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_kept_or_made() {
    let stack = Stack::start().await;
    let mine = "3f2b8a64-1c9d-4e5f-8a7b-6c5d4e3f2a1b";
    let response = stack
        .request(Method::GET, "/healthz")
        .header("x-request-id", mine)
        .send()
        .await
        .unwrap();
    assert_eq!(request_id(&response), mine);

    let response = stack
        .request(Method::GET, "/healthz")
        .header("x-request-id", "not-a-guid")
        .send()
        .await
        .unwrap();
    let made = request_id(&response);
    assert_ne!(made, "not-a-guid");
    assert!(uuid::Uuid::try_parse(&made).is_ok());

    let response = stack.request(Method::GET, "/healthz").send().await.unwrap();
    assert!(uuid::Uuid::try_parse(&request_id(&response)).is_ok());

    // Errors quote the caller's id.
    let (partner, _) = stack.partner("Acme").await;
    let response = stack
        .request(Method::GET, &format!("/{partner}/callbacks"))
        .header("x-request-id", mine)
        .send()
        .await
        .unwrap();
    let problem = expect_problem(response, StatusCode::UNAUTHORIZED).await;
    assert_eq!(problem["requestId"], mine);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_are_problems() {
    let stack = Stack::start().await;
    let response = stack
        .request(Method::GET, "/no/such/route/here/at/all")
        .send()
        .await
        .unwrap();
    expect_problem(response, StatusCode::NOT_FOUND).await;
    let response = stack
        .request(Method::PATCH, "/healthz")
        .send()
        .await
        .unwrap();
    expect_problem(response, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let stack = Stack::start().await;
    let live: Value = stack
        .request(Method::GET, "/healthz")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(live["status"], "ok");
    let ready = stack.request(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);

    // A gateway whose registry is not there is alive but not ready.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let orphan = Stack::start_with(|c| c.registry_url = format!("http://{closed}")).await;
    assert_eq!(
        orphan
            .request(Method::GET, "/healthz")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let not_ready = orphan.request(Method::GET, "/readyz").send().await.unwrap();
    expect_problem(not_ready, StatusCode::SERVICE_UNAVAILABLE).await;
    // And partner requests get a 503, not a 500.
    let partner = uuid::Uuid::new_v4();
    let response = orphan
        .as_key(
            "pcb_0123456789012345678901234567890123456789012",
            Method::GET,
            &format!("/{partner}/callbacks"),
        )
        .send()
        .await
        .unwrap();
    expect_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
}
