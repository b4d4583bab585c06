//! End-to-end tests of the public contract: real HTTP into the gateway,
//! real gRPC to a real registry, a fresh Postgres database per test.

// A failed unwrap is a failed test, which is what a test wants.
#![allow(clippy::unwrap_used)]

mod admin;
mod auth;
mod callbacks;
mod deliveries;
mod echo;
mod erasure;
mod isolation;
mod limits;
mod openapi;
mod pause;
mod portal;
mod recoveries;
mod request_id;
mod signing;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use test_support::TestDb;
use tokio::sync::oneshot;

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";
pub const URL: &str = "https://hooks.example.com/callbacks";

/// A registry and a gateway in front of it; with [`Stack::with_delivery`]
/// also a dispatcher and an HTTPS receiver. All stop when dropped.
#[derive(Debug)]
pub struct Stack {
    pub base: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    /// The gateway's configuration, for more replicas of it.
    pub config: gateway::Config,
    /// Present when the stack delivers.
    pub delivery: Option<Delivery>,
    _stops: Vec<oneshot::Sender<()>>,
}

/// The delivery half of a stack.
#[derive(Debug)]
pub struct Delivery {
    pub receiver: test_support::WebhookReceiver,
    /// The dispatcher's database.
    pub db: TestDb,
    _ca_file: CaFile,
}

#[derive(Debug)]
struct CaFile(std::path::PathBuf);

impl Drop for CaFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A gateway with `config`: its base URL, and what stops it when dropped.
pub async fn start_gateway(config: gateway::Config) -> (String, oneshot::Sender<()>) {
    let app = gateway::Application::build(config).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let stop = spawn_until_dropped(|stopped| {
        app.run_until_stopped(async {
            let _ = stopped.await;
        })
    });
    (base, stop)
}

fn spawn_until_dropped<F>(run: impl FnOnce(oneshot::Receiver<()>) -> F) -> oneshot::Sender<()>
where
    F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(run(stopped));
    stop
}

impl Stack {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut gateway::Config)) -> Self {
        Self::build(false, adjust).await
    }

    /// The whole system: registry, dispatcher (trusting the receiver's CA,
    /// loopback admitted) and gateway, plus an HTTPS receiver.
    pub async fn with_delivery() -> Self {
        Self::build(true, |_| {}).await
    }

    /// [`Stack::with_delivery`], with the gateway's configuration adjusted.
    pub async fn with_delivery_and(adjust: impl FnOnce(&mut gateway::Config)) -> Self {
        Self::build(true, adjust).await
    }

    async fn build(delivering: bool, adjust: impl FnOnce(&mut gateway::Config)) -> Self {
        let db = TestDb::new().await.unwrap();
        let mut registry_config = registry_service::Config::for_database(db.url());
        if delivering {
            registry_config.allowed_callback_networks = vec!["127.0.0.0/8".parse().unwrap()];
        }
        let registry = registry_service::Application::build(registry_config)
            .await
            .unwrap();
        let registry_url = format!("http://{}", registry.local_addr());
        let registry_stop = spawn_until_dropped(|stopped| {
            registry.run_until_stopped(async {
                let _ = stopped.await;
            })
        });
        let mut stops = vec![registry_stop];
        let mut config = gateway::Config::for_registry(&registry_url);
        config.admin_api_key = Some(ADMIN_KEY.to_owned().into());
        // These tests are about contracts, and make many calls at once; the
        // rates have tests of their own (limits.rs).
        config.partner_burst = std::num::NonZeroU32::new(100_000).unwrap();
        config.echo_burst = std::num::NonZeroU32::new(100_000).unwrap();
        let delivery = if delivering {
            let receiver = test_support::WebhookReceiver::start_https().await.unwrap();
            let ca_file = CaFile(
                std::env::temp_dir().join(format!("gateway-it-ca-{}.pem", uuid::Uuid::new_v4())),
            );
            std::fs::write(&ca_file.0, receiver.ca_pem().unwrap()).unwrap();
            let dispatch_db = TestDb::new().await.unwrap();
            let mut dispatcher_config =
                dispatcher_service::Config::for_database(dispatch_db.url(), &registry_url);
            dispatcher_config.allowed_callback_networks = vec!["127.0.0.0/8".parse().unwrap()];
            dispatcher_config.extra_ca_files = vec![ca_file.0.clone()];
            dispatcher_config.retry_schedule = "200ms".into();
            dispatcher_config.poll_interval = std::time::Duration::from_millis(200);
            let dispatcher = dispatcher_service::Application::build(dispatcher_config)
                .await
                .unwrap();
            config.dispatcher_url = Some(format!("http://{}", dispatcher.local_addr()));
            stops.push(spawn_until_dropped(|stopped| {
                dispatcher.run_until_stopped(async {
                    let _ = stopped.await;
                })
            }));
            Some(Delivery {
                receiver,
                db: dispatch_db,
                _ca_file: ca_file,
            })
        } else {
            None
        };
        adjust(&mut config);
        let (base, gateway_stop) = start_gateway(config.clone()).await;
        stops.insert(0, gateway_stop);
        Self {
            base,
            http: reqwest::Client::new(),
            db,
            config,
            delivery,
            _stops: stops,
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// A request with a partner's (or the admin's) bearer key.
    pub fn as_key(&self, key: &str, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(key)
    }

    /// A new partner, made through the operator API: (id, API key).
    pub async fn partner(&self, name: &str) -> (String, String) {
        let response = self
            .as_key(ADMIN_KEY, Method::POST, "/v1/admin/partners")
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        (
            body["partner"]["partnerUniqueId"]
                .as_str()
                .unwrap()
                .to_owned(),
            body["apiKey"]["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Revokes the partner's first API key through the operator API.
    pub async fn revoke_first_key(&self, partner: &str) {
        let keys: Value = self
            .as_key(
                ADMIN_KEY,
                Method::GET,
                &format!("/v1/admin/partners/{partner}/keys"),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        self.revoke_key(partner, keys["results"][0]["keyId"].as_str().unwrap())
            .await;
    }

    /// Revokes one of the partner's keys through the operator API.
    pub async fn revoke_key(&self, partner: &str, key_id: &str) {
        let revoked = self
            .as_key(
                ADMIN_KEY,
                Method::DELETE,
                &format!("/v1/admin/partners/{partner}/keys/{key_id}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), StatusCode::OK);
    }

    /// `PUT /{partner}/callbacks/{type}` with `body`.
    pub async fn put_callback(&self, key: &str, partner: &str, kind: i32, body: Value) -> Response {
        self.as_key(key, Method::PUT, &format!("/{partner}/callbacks/{kind}"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

/// Asserts a problem document with `status`, and returns it.
pub async fn expect_problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status, "unexpected status");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let header_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let problem: Value = response.json().await.unwrap();
    for member in ["type", "title", "detail"] {
        assert!(problem[member].is_string(), "{member} missing in {problem}");
    }
    assert_eq!(problem["status"], status.as_u16());
    assert_eq!(problem["requestId"], header_id.as_str());
    problem
}

/// Asserts a 400 whose `invalidParams` names `field` with a reason
/// containing `reason`.
pub async fn expect_invalid(response: Response, field: &str, reason: &str) -> Value {
    let problem = expect_problem(response, StatusCode::BAD_REQUEST).await;
    let params = problem["invalidParams"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        params
            .iter()
            .any(|p| p["name"] == field && p["reason"].as_str().unwrap().contains(reason)),
        "no invalid param {field} ({reason}) in {problem}"
    );
    problem
}
