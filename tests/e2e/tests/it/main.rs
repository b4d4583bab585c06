//! The whole system as separate processes against real Postgres: an
//! operator creates a partner, the partner registers a callback over REST, a
//! platform service publishes over gRPC, a real HTTPS receiver gets the
//! signed webhook, the partner reads the delivery log over REST, an echo
//! reaches the receiver, and restarting any one service loses nothing.

// A failed unwrap is a failed test, which is what a test wants.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use callbacks_proto::dispatcher::v1 as dpb;
use dpb::dispatcher_service_client::DispatcherServiceClient;
use e2e_tests::{Service, env, free_port};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::{Reply, TestDb, WebhookReceiver, eventually};

const ADMIN_KEY: &str = "e2e-admin-key-0123456789";

struct System {
    registry: Service,
    dispatcher: Service,
    gateway: Service,
    receiver: WebhookReceiver,
    http: reqwest::Client,
    _dbs: (TestDb, TestDb),
    ca_file: std::path::PathBuf,
}

impl Drop for System {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl System {
    async fn start() -> Self {
        let registry_db = TestDb::new().await.unwrap();
        let dispatch_db = TestDb::new().await.unwrap();
        let receiver = WebhookReceiver::start_https().await.unwrap();
        let ca_file = std::env::temp_dir().join(format!("e2e-ca-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&ca_file, receiver.ca_pem().unwrap()).unwrap();
        let (registry_addr, dispatcher_addr, gateway_addr) = (
            loopback(free_port().unwrap()),
            loopback(free_port().unwrap()),
            loopback(free_port().unwrap()),
        );
        let registry_url = format!("http://{registry_addr}");
        let dispatcher_url = format!("http://{dispatcher_addr}");

        let registry = Service::start(
            "registry-service",
            registry_addr,
            env(&[
                ("REGISTRY_LISTEN", &registry_addr.to_string()),
                ("REGISTRY_DATABASE_URL", registry_db.url()),
                ("REGISTRY_ALLOWED_CALLBACK_NETWORKS", "127.0.0.0/8"),
                (
                    "REGISTRY_ENCRYPTION_KEY",
                    "ZTJlLXRlc3RzLWVuY3J5cHRpb24ta2V5LTMyYnl0ZXM=",
                ),
            ]),
        )
        .await
        .unwrap();
        let dispatcher = Service::start(
            "dispatcher-service",
            dispatcher_addr,
            env(&[
                ("DISPATCHER_LISTEN", &dispatcher_addr.to_string()),
                ("DISPATCHER_DATABASE_URL", dispatch_db.url()),
                ("DISPATCHER_REGISTRY_URL", &registry_url),
                ("DISPATCHER_ALLOWED_CALLBACK_NETWORKS", "127.0.0.0/8"),
                ("DISPATCHER_EXTRA_CA_FILES", ca_file.to_str().unwrap()),
                ("DISPATCHER_RETRY_SCHEDULE", "200ms,200ms,500ms,1s,1s,1s"),
                ("DISPATCHER_RETRY_JITTER", "0"),
                ("DISPATCHER_CONNECT_TIMEOUT", "500ms"),
                ("DISPATCHER_RESPONSE_TIMEOUT", "2s"),
                ("DISPATCHER_LEASE", "4s"),
                ("DISPATCHER_POLL_INTERVAL", "200ms"),
                ("DISPATCHER_REGISTRY_CACHE_TTL", "200ms"),
                ("DISPATCHER_SHUTDOWN_GRACE", "5s"),
            ]),
        )
        .await
        .unwrap();
        let gateway = Service::start(
            "gateway",
            gateway_addr,
            env(&[
                ("GATEWAY_LISTEN", &gateway_addr.to_string()),
                ("GATEWAY_REGISTRY_URL", &registry_url),
                ("GATEWAY_DISPATCHER_URL", &dispatcher_url),
                ("GATEWAY_ADMIN_API_KEY", ADMIN_KEY),
            ]),
        )
        .await
        .unwrap();
        Self {
            registry,
            dispatcher,
            gateway,
            receiver,
            http: reqwest::Client::new(),
            _dbs: (registry_db, dispatch_db),
            ca_file,
        }
    }

    fn rest(&self, key: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("http://{}{path}", self.gateway.addr))
            .bearer_auth(key)
    }

    async fn publisher(&self) -> DispatcherServiceClient<tonic::transport::Channel> {
        DispatcherServiceClient::connect(format!("http://{}", self.dispatcher.addr))
            .await
            .unwrap()
    }

    /// An operator creates a partner; the partner registers `path` on the
    /// receiver for type 5. Returns (partner id, API key).
    async fn partner_with_callback(&self, path: &str) -> (String, String) {
        let created = self
            .rest(ADMIN_KEY, Method::POST, "/v1/admin/partners")
            .json(&json!({"name": "Acme"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        let created: Value = created.json().await.unwrap();
        let partner = created["partner"]["partnerUniqueId"]
            .as_str()
            .unwrap()
            .to_owned();
        let key = created["apiKey"]["token"].as_str().unwrap().to_owned();
        let registered = self
            .rest(&key, Method::PUT, &format!("/{partner}/callbacks/5"))
            .json(&json!({"callBackUrl": self.receiver.url(path), "callBackUserName": "acme", "callBackPassword": "pw"}))
            .send()
            .await
            .unwrap();
        assert_eq!(registered.status(), StatusCode::CREATED);
        (partner, key)
    }

    /// Waits until every one of `ids` has arrived at least once.
    async fn all_arrive(&self, ids: &HashSet<String>, deadline: Duration) {
        eventually(
            &format!("{} deliveries to arrive", ids.len()),
            deadline,
            || {
                let arrived: HashSet<String> = self
                    .receiver
                    .requests()
                    .iter()
                    .filter_map(|r| r.header("webhook-id").map(str::to_owned))
                    .collect();
                let missing = ids.difference(&arrived).count();
                async move { (missing == 0).then_some(()) }
            },
        )
        .await
        .unwrap();
    }
}

async fn publish_many(system: &System, partner: &str, count: usize, tag: &str) -> HashSet<String> {
    let mut publisher = system.publisher().await;
    let events = (0..count)
        .map(|i| dpb::PublishRequest {
            partner_id: partner.to_owned(),
            notification_type: 5,
            payload_json: format!(r#"{{"tag":"{tag}","n":{i}}}"#),
            idempotency_key: None,
            occurred_at: None,
        })
        .collect();
    let published = publisher
        .publish_batch(dpb::PublishBatchRequest { events })
        .await
        .unwrap()
        .into_inner();
    published
        .results
        .into_iter()
        .map(|r| r.delivery_id.unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_story() {
    let system = System::start().await;
    let (partner, key) = system.partner_with_callback("/acme").await;

    // A platform service publishes over gRPC.
    let payload = r#"{"processUniqueId": "p-1", "amount": 42}"#;
    let mut publisher = system.publisher().await;
    let published = publisher
        .publish(dpb::PublishRequest {
            partner_id: partner.clone(),
            notification_type: 5,
            payload_json: payload.into(),
            idempotency_key: Some("evt-1".into()),
            occurred_at: None,
        })
        .await
        .unwrap()
        .into_inner();
    let delivery_id = published.delivery_id.unwrap();

    // The receiver gets it, signed, with the partner's credentials.
    let request = system
        .receiver
        .wait_for_requests(1, Duration::from_secs(15))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(request.body.as_ref(), payload.as_bytes());
    assert_eq!(request.header("webhook-id"), Some(delivery_id.as_str()));
    assert!(
        request
            .header("authorization")
            .unwrap()
            .starts_with("Basic ")
    );
    let secret: Value = system
        .rest(&key, Method::GET, &format!("/{partner}/callbacks/5/secret"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    standardwebhooks::Webhook::new(secret["secret"].as_str().unwrap())
        .unwrap()
        .verify(&request.body, &request.headers)
        .expect("the signature verifies");

    // The partner reads the delivery log over REST.
    let log: Value = eventually(
        "the delivery to be logged as delivered",
        Duration::from_secs(10),
        || {
            let request = system.rest(
                &key,
                Method::GET,
                &format!("/{partner}/callbacks/5/deliveries"),
            );
            async move {
                let log: Value = request.send().await.ok()?.json().await.ok()?;
                (log["results"][0]["status"] == "delivered").then_some(log)
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(log["results"][0]["deliveryId"], delivery_id.as_str());
    let one: Value = system
        .rest(
            &key,
            Method::GET,
            &format!("/v1/callbacks/deliveries/{delivery_id}"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["attempts"][0]["responseStatus"], 200);

    // An echo reaches the receiver with the raw body.
    let raw = r#"{"simulationUniqueId":"sim-1"}"#;
    let echo = system
        .rest(
            &key,
            Method::POST,
            &format!("/v1/callbacks/echo/{partner}/5"),
        )
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(echo.status(), StatusCode::ACCEPTED);
    let requests = system
        .receiver
        .wait_for_requests(2, Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(requests[1].body.as_ref(), raw.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_any_service_loses_nothing() {
    let mut system = System::start().await;
    system
        .receiver
        .set_global_default(Reply::ok().after(Duration::from_millis(50)));
    let (partner, key) = system.partner_with_callback("/acme").await;
    let mut expected = HashSet::new();

    // The gateway is stateless: after a restart the partner carries on.
    system.gateway.restart().await.unwrap();
    let listed = system
        .rest(&key, Method::GET, &format!("/{partner}/callbacks"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);

    // The registry goes down: publishing goes on, delivery waits for it.
    system.registry.stop().await.unwrap();
    expected.extend(publish_many(&system, &partner, 20, "registry-down").await);
    system.registry.start_again().await.unwrap();
    system.all_arrive(&expected, Duration::from_secs(30)).await;

    // The dispatcher is killed mid-delivery, then started again.
    let batch = publish_many(&system, &partner, 100, "dispatcher-killed").await;
    let before = system.receiver.requests().len();
    system
        .receiver
        .wait_for_requests(before + 10, Duration::from_secs(15))
        .await
        .unwrap();
    system.dispatcher.kill().await.unwrap();
    system.dispatcher.start_again().await.unwrap();
    expected.extend(batch);
    system.all_arrive(&expected, Duration::from_secs(60)).await;

    // A graceful restart in the middle of deliveries.
    let batch = publish_many(&system, &partner, 100, "dispatcher-restarted").await;
    let before = system.receiver.requests().len();
    system
        .receiver
        .wait_for_requests(before + 10, Duration::from_secs(15))
        .await
        .unwrap();
    system.dispatcher.restart().await.unwrap();
    expected.extend(batch);
    system.all_arrive(&expected, Duration::from_secs(60)).await;

    let received = system.receiver.requests().len();
    eprintln!(
        "restarts: {} deliveries expected, all arrived; {} requests in all ({} duplicates)",
        expected.len(),
        received,
        received - expected.len()
    );
}
