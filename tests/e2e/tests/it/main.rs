//! The whole system as separate processes against real Postgres: the
//! partner's story and restarts (`story.rs`), what SREs see: traces,
//! metrics and logs (`observability.rs`), and the promises kept under
//! faults (`reliability/`).

// A failed unwrap is a failed test, which is what a test wants.
#![allow(clippy::unwrap_used)]

mod callers;
mod coherence;
mod observability;
mod reliability;
mod schemas;
mod secrets;
mod story;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use callbacks_proto::dispatcher::v1 as dpb;
use callbacks_proto::registry::v1::registry_service_client::RegistryServiceClient;
use dpb::dispatcher_service_client::DispatcherServiceClient;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::process::{Service, env, free_port};
use test_support::{TestDb, WebhookReceiver, eventually};
use tonic::transport::Channel;

pub const ADMIN_KEY: &str = "e2e-admin-key-0123456789";

/// Each internal caller's token, as the services are configured with them.
pub mod tokens {
    pub const DISPATCHER_TO_REGISTRY: &str = "e2e-dispatcher-to-registry-0123456789";
    pub const GATEWAY_TO_REGISTRY: &str = "e2e-gateway-to-registry-0123456789";
    pub const OPERATOR_TO_REGISTRY: &str = "e2e-operator-to-registry-0123456789";
    pub const PUBLISHER: &str = "e2e-publisher-to-dispatcher-0123456789";
    pub const GATEWAY_TO_DISPATCHER: &str = "e2e-gateway-to-dispatcher-0123456789";
    pub const OPERATOR_TO_DISPATCHER: &str = "e2e-operator-to-dispatcher-0123456789";
}

/// A channel whose calls present a caller token.
pub type Authed = service_kit::telemetry::OutboundChannel;

fn bearer(token: Option<&str>) -> service_kit::telemetry::Outbound {
    service_kit::telemetry::Outbound::new(token).unwrap()
}
pub const ENCRYPTION_KEY: &str = "ZTJlLXRlc3RzLWVuY3J5cHRpb24ta2V5LTMyYnl0ZXM=";

/// How a [`System`] is started.
#[derive(Debug, Default)]
pub struct Options {
    /// Export traces to this OTLP endpoint.
    pub otlp: Option<String>,
    /// JSON logs at this level into one file per service under this folder.
    pub logs: Option<(std::path::PathBuf, &'static str)>,
    /// The dispatcher's database, when a test owns its server (to kill
    /// it); else a fresh database on the shared server.
    pub dispatcher_database: Option<String>,
    /// Another CA the dispatcher trusts, beside the receiver's.
    pub extra_ca_pem: Option<String>,
}

#[derive(Debug)]
pub struct System {
    /// Admin HTTP ports (`/metrics`) of the registry and the dispatcher.
    pub registry_admin: SocketAddr,
    pub dispatcher_admin: SocketAddr,
    pub registry: Service,
    pub dispatcher: Service,
    pub gateway: Service,
    pub receiver: WebhookReceiver,
    pub http: reqwest::Client,
    dbs: (TestDb, TestDb),
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
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let registry_db = TestDb::new().await.unwrap();
        let dispatch_db = TestDb::new().await.unwrap();
        let receiver = WebhookReceiver::start_https().await.unwrap();
        let ca_file = std::env::temp_dir().join(format!("e2e-ca-{}.pem", uuid::Uuid::new_v4()));
        let trusted = [receiver.ca_pem(), options.extra_ca_pem.as_deref()];
        std::fs::write(&ca_file, trusted.into_iter().flatten().collect::<String>()).unwrap();
        let (registry_addr, dispatcher_addr, gateway_addr) = (
            loopback(free_port().unwrap()),
            loopback(free_port().unwrap()),
            loopback(free_port().unwrap()),
        );
        let (registry_admin, dispatcher_admin) = (
            loopback(free_port().unwrap()),
            loopback(free_port().unwrap()),
        );
        let registry_url = format!("http://{registry_addr}");
        let with_common = |service: &str, mut vars: Vec<(String, String)>| {
            if let Some(endpoint) = &options.otlp {
                vars.extend(env(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
                    ("OTEL_SERVICE_NAME", service),
                    ("OTEL_BSP_SCHEDULE_DELAY", "100"),
                ]));
            }
            if let Some((_, level)) = &options.logs {
                vars.extend(env(&[("LOG_FORMAT", "json"), ("RUST_LOG", level)]));
            }
            vars
        };
        let log_of = |service: &str| {
            options
                .logs
                .as_ref()
                .map(|(dir, _)| dir.join(format!("{service}.log")))
        };
        let dispatcher_url = format!("http://{dispatcher_addr}");

        let registry = Service::start(
            "registry-service",
            registry_addr,
            with_common(
                "registry-service",
                env(&[
                    ("REGISTRY_LISTEN", &registry_addr.to_string()),
                    ("REGISTRY_ADMIN_LISTEN", &registry_admin.to_string()),
                    ("REGISTRY_DATABASE_URL", registry_db.url()),
                    ("REGISTRY_ALLOWED_CALLBACK_NETWORKS", "127.0.0.0/8"),
                    ("REGISTRY_ENCRYPTION_KEY", ENCRYPTION_KEY),
                    (
                        "REGISTRY_CALLERS",
                        &format!(
                            "dispatcher={},gateway={},operator={}",
                            tokens::DISPATCHER_TO_REGISTRY,
                            tokens::GATEWAY_TO_REGISTRY,
                            tokens::OPERATOR_TO_REGISTRY
                        ),
                    ),
                ]),
            ),
            log_of("registry-service"),
        )
        .await
        .unwrap();
        let dispatcher = Service::start(
            "dispatcher-service",
            dispatcher_addr,
            with_common(
                "dispatcher-service",
                env(&[
                    ("DISPATCHER_LISTEN", &dispatcher_addr.to_string()),
                    ("DISPATCHER_ADMIN_LISTEN", &dispatcher_admin.to_string()),
                    (
                        "DISPATCHER_DATABASE_URL",
                        options
                            .dispatcher_database
                            .as_deref()
                            .unwrap_or(dispatch_db.url()),
                    ),
                    ("DISPATCHER_REGISTRY_URL", &registry_url),
                    ("DISPATCHER_ALLOWED_CALLBACK_NETWORKS", "127.0.0.0/8"),
                    ("DISPATCHER_EXTRA_CA_FILES", ca_file.to_str().unwrap()),
                    ("DISPATCHER_RETRY_SCHEDULE", "200ms,200ms,500ms,1s,1s,1s"),
                    ("DISPATCHER_RETRY_JITTER", "0"),
                    ("DISPATCHER_CONNECT_TIMEOUT", "500ms"),
                    ("DISPATCHER_RESPONSE_TIMEOUT", "2s"),
                    ("DISPATCHER_LEASE", "4s"),
                    ("DISPATCHER_POLL_INTERVAL", "200ms"),
                    // Kept for an hour: only the registry's change log
                    // makes a partner's change apply (coherence.rs).
                    ("DISPATCHER_REGISTRY_CACHE_TTL", "1h"),
                    ("DISPATCHER_SHUTDOWN_GRACE", "5s"),
                    ("DISPATCHER_REGISTRY_TOKEN", tokens::DISPATCHER_TO_REGISTRY),
                    (
                        "DISPATCHER_CALLERS",
                        &format!(
                            "publisher={},gateway={},operator={}",
                            tokens::PUBLISHER,
                            tokens::GATEWAY_TO_DISPATCHER,
                            tokens::OPERATOR_TO_DISPATCHER
                        ),
                    ),
                ]),
            ),
            log_of("dispatcher-service"),
        )
        .await
        .unwrap();
        let gateway = Service::start(
            "gateway",
            gateway_addr,
            with_common(
                "gateway",
                env(&[
                    ("GATEWAY_LISTEN", &gateway_addr.to_string()),
                    ("GATEWAY_REGISTRY_URL", &registry_url),
                    ("GATEWAY_DISPATCHER_URL", &dispatcher_url),
                    ("GATEWAY_ADMIN_API_KEY", ADMIN_KEY),
                    ("GATEWAY_REGISTRY_TOKEN", tokens::GATEWAY_TO_REGISTRY),
                    ("GATEWAY_DISPATCHER_TOKEN", tokens::GATEWAY_TO_DISPATCHER),
                ]),
            ),
            log_of("gateway"),
        )
        .await
        .unwrap();
        Self {
            registry_admin,
            dispatcher_admin,
            registry,
            dispatcher,
            gateway,
            receiver,
            http: reqwest::Client::new(),
            dbs: (registry_db, dispatch_db),
            ca_file,
        }
    }

    pub fn rest(&self, key: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("http://{}{path}", self.gateway.addr))
            .bearer_auth(key)
    }

    /// GET `path` with `key`, as JSON; `None` if it cannot be had (for
    /// waits that ask again).
    pub async fn get_json(&self, key: &str, path: &str) -> Option<Value> {
        self.rest(key, Method::GET, path)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()
    }

    /// A platform service that publishes, with its token.
    pub async fn publisher(&self) -> DispatcherServiceClient<Authed> {
        self.dispatcher_as(Some(tokens::PUBLISHER)).await
    }

    /// A publisher of another dispatcher replica, at `addr`.
    pub async fn publisher_at(&self, addr: SocketAddr) -> DispatcherServiceClient<Authed> {
        DispatcherServiceClient::with_interceptor(
            self.channel(addr).await,
            bearer(Some(tokens::PUBLISHER)),
        )
    }

    /// The dispatcher, called with `token` (or none).
    pub async fn dispatcher_as(&self, token: Option<&str>) -> DispatcherServiceClient<Authed> {
        DispatcherServiceClient::with_interceptor(
            self.channel(self.dispatcher.addr).await,
            bearer(token),
        )
    }

    /// The registry, called with `token` (or none).
    pub async fn registry_as(&self, token: Option<&str>) -> RegistryServiceClient<Authed> {
        RegistryServiceClient::with_interceptor(
            self.channel(self.registry.addr).await,
            bearer(token),
        )
    }

    async fn channel(&self, addr: SocketAddr) -> Channel {
        Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// An operator creates a partner; the partner registers `path` on the
    /// receiver for type 5. Returns (partner id, API key).
    pub async fn partner_with_callback(&self, path: &str) -> (String, String) {
        self.partner_at(&self.receiver.url(path)).await
    }

    /// An operator creates a partner; the partner registers `url` (with a
    /// user name and password) for type 5. Returns (partner id, API key).
    pub async fn partner_at(&self, url: &str) -> (String, String) {
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
            .json(
                &json!({"callBackUrl": url, "callBackUserName": "acme", "callBackPassword": "pw"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(registered.status(), StatusCode::CREATED);
        (partner, key)
    }

    /// The dispatcher's database (the shared server's; not the one of
    /// [`Options::dispatcher_database`]).
    pub fn dispatch_db(&self) -> &TestDb {
        &self.dbs.1
    }

    /// `pg_dump` of the registry's and the dispatcher's databases.
    pub async fn dumps(&self) -> [String; 2] {
        [
            self.dbs.0.dump().await.unwrap(),
            self.dbs.1.dump().await.unwrap(),
        ]
    }

    /// Waits until every one of `ids` has arrived at least once.
    pub async fn all_arrive(&self, ids: &HashSet<String>, deadline: Duration) {
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

/// A type-5 event for `partner` without an idempotency key, marked by
/// its `processUniqueId`.
pub fn unkeyed(partner: &str, marker: &str) -> dpb::PublishRequest {
    dpb::PublishRequest {
        partner_id: partner.to_owned(),
        notification_type: 5,
        payload_json: format!(r#"{{"processUniqueId":"{marker}"}}"#),
        idempotency_key: None,
        occurred_at: None,
        ordering_key: None,
    }
}

/// Scrapes a Prometheus endpoint and returns the value of the sample whose
/// name and labels are given (labels in any order), if present.
pub async fn metric(
    http: &reqwest::Client,
    addr: SocketAddr,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    let text = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = series.split_once('{').unwrap_or((series, "}"));
            if metric != name {
                return None;
            }
            let present: Vec<&str> = label_text
                .trim_end_matches('}')
                .split(',')
                .filter(|l| !l.is_empty())
                .collect();
            let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            (present.len() == wanted.len() && wanted.iter().all(|w| present.contains(&w.as_str())))
                .then(|| value.parse().ok())
                .flatten()
        })
}
