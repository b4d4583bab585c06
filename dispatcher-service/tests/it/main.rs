//! End-to-end tests of delivery: a real registry, real dispatchers, a real
//! HTTPS receiver whose CA the dispatcher is configured to trust, and a
//! fresh database for each service.

// A failed unwrap is a failed test, which is what a test wants.
#![allow(clippy::unwrap_used)]
// Tests stage times on the wall clock on purpose.
#![allow(clippy::disallowed_methods)]

mod coherence;
mod cursor;
mod delivery;
mod erasure;
mod failures;
mod fencing;
mod health;
mod isolation;
mod ordering;
mod pausing;
mod payload_schemas;
mod plans;
mod processes;
mod publish;
mod recovery;
mod retention;
mod safety;
mod schema;
mod shared_limits;
mod signing;
mod throttling;

use std::path::PathBuf;
use std::time::Duration;

use callbacks_proto::dispatcher::v1 as dpb;
use callbacks_proto::registry::v1 as rpb;
use dpb::dispatcher_service_client::DispatcherServiceClient;
use rpb::registry_service_client::RegistryServiceClient;
use test_support::{TestDb, WebhookReceiver};
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// The type the delivery tests publish: seeded, with its payload schema
/// removed at start, so that they can publish free-form payloads.
/// `publish.rs` tests payload schemas on [`SCHEMA_TYPE`].
pub const TYPE: i32 = 5;
/// A seeded type that keeps its seeded schema (exactly one of
/// processUniqueId and simulationUniqueId).
pub const SCHEMA_TYPE: i32 = 6;

/// A file deleted when dropped.
#[derive(Debug)]
pub struct TempFile(pub PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn channel(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A registry (with its database), an HTTPS receiver, and the dispatch
/// database; dispatchers are started on demand.
#[derive(Debug)]
pub struct World {
    pub registry: RegistryServiceClient<Channel>,
    pub registry_url: String,
    pub receiver: WebhookReceiver,
    pub ca_file: TempFile,
    pub dispatch_db: TestDb,
    registry_db: TestDb,
    stop_registry: Option<oneshot::Sender<()>>,
}

/// A dispatcher running in this process. Stops when dropped, or through
/// `stop` (graceful, awaited).
#[derive(Debug)]
pub struct RunningDispatcher {
    pub client: DispatcherServiceClient<Channel>,
    pub addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl RunningDispatcher {
    /// Sends the shutdown signal and waits until the dispatcher has stopped.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            done.await.unwrap().unwrap();
        }
    }
}

/// Serves a registry on `listen` (port 0: any) with its database at
/// `database_url`; answers its address and what stops it.
async fn serve_registry(
    database_url: &str,
    listen: std::net::SocketAddr,
) -> (std::net::SocketAddr, oneshot::Sender<()>) {
    let mut config = registry_service::Config::for_database(database_url);
    config.listen = listen;
    config.allow_http_callbacks = true;
    config.allowed_callback_networks =
        vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
    let app = registry_service::Application::build(config).await.unwrap();
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

impl World {
    pub async fn start() -> Self {
        let registry_db = TestDb::new().await.unwrap();
        let (addr, stop) = serve_registry(
            registry_db.url(),
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .await;
        let receiver = WebhookReceiver::start_https().await.unwrap();
        let ca_file = TempFile(
            std::env::temp_dir().join(format!("receiver-ca-{}.pem", uuid::Uuid::new_v4())),
        );
        std::fs::write(&ca_file.0, receiver.ca_pem().unwrap()).unwrap();
        let mut registry = RegistryServiceClient::new(channel(addr).await);
        registry
            .set_payload_schema(rpb::SetPayloadSchemaRequest {
                notification_type_id: TYPE,
                payload_schema_json: None,
            })
            .await
            .unwrap();
        Self {
            registry,
            registry_url: format!("http://{addr}"),
            receiver,
            ca_file,
            dispatch_db: TestDb::new().await.unwrap(),
            registry_db,
            stop_registry: Some(stop),
        }
    }

    /// Stops the registry, until [`World::restart_registry`].
    pub fn stop_registry(&mut self) {
        if let Some(stop) = self.stop_registry.take() {
            let _ = stop.send(());
        }
    }

    /// Serves the registry again, on the same address and database.
    pub async fn restart_registry(&mut self) {
        let addr = self.registry_addr();
        let (_, stop) = serve_registry(self.registry_db.url(), addr).await;
        self.stop_registry = Some(stop);
    }

    pub fn registry_addr(&self) -> std::net::SocketAddr {
        self.registry_url
            .trim_start_matches("http://")
            .parse()
            .unwrap()
    }

    /// Fast settings for tests: a short schedule without jitter, short
    /// timeouts, loopback admitted, the receiver's CA trusted.
    pub fn dispatcher_config(&self) -> dispatcher_service::Config {
        let mut config =
            dispatcher_service::Config::for_database(self.dispatch_db.url(), &self.registry_url);
        config.retry_schedule = "200ms,200ms".into();
        config.retry_jitter = 0.0;
        config.connect_timeout = Duration::from_millis(500);
        config.response_timeout = Duration::from_secs(1);
        config.lease = Duration::from_secs(3);
        config.poll_interval = Duration::from_millis(200);
        config.registry_cache_ttl = Duration::from_millis(100);
        config.allowed_callback_networks =
            vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        config.extra_ca_files = vec![self.ca_file.0.clone()];
        config.shutdown_grace = Duration::from_secs(5);
        config.paused_recheck = Duration::from_millis(300);
        config
    }

    pub async fn start_dispatcher(&self, config: dispatcher_service::Config) -> RunningDispatcher {
        let app = dispatcher_service::Application::build(config)
            .await
            .unwrap();
        let addr = app.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        RunningDispatcher {
            client: DispatcherServiceClient::new(channel(addr).await),
            addr,
            stop: Some(stop),
            done: Some(done),
        }
    }

    /// A new partner, without callbacks: its id.
    pub async fn partner(&mut self) -> String {
        self.registry
            .create_partner(rpb::CreatePartnerRequest {
                name: "Acme".into(),
                key_label: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .partner
            .unwrap()
            .partner_id
    }

    /// A new partner with a callback for [`TYPE`] at `url`: (partner id,
    /// registration id).
    pub async fn partner_with_callback(
        &mut self,
        url: &str,
        credentials: Option<(&str, &str)>,
    ) -> (String, String) {
        let partner = self.partner().await;
        let registration = self.set_callback(&partner, url, credentials).await;
        (partner, registration)
    }

    /// Creates or updates the partner's callback for [`TYPE`].
    pub async fn set_callback(
        &mut self,
        partner: &str,
        url: &str,
        credentials: Option<(&str, &str)>,
    ) -> String {
        self.registry
            .upsert_callback(rpb::UpsertCallbackRequest {
                partner_id: partner.into(),
                notification_type: TYPE,
                callback_url: url.into(),
                callback_user_name: credentials.map(|c| c.0.to_owned()),
                callback_password: credentials.map(|c| c.1.to_owned()),
                merchant_id: None,
                retry_policy: None,
                signature_scheme: None,
            })
            .await
            .unwrap()
            .into_inner()
            .registration
            .unwrap()
            .registration_id
    }

    pub async fn registration(&mut self, partner: &str) -> Option<rpb::Registration> {
        self.registry
            .get_callback(rpb::GetCallbackRequest {
                partner_id: partner.into(),
                notification_type: TYPE,
            })
            .await
            .ok()
            .map(|r| r.into_inner())
    }
}

/// Waits until the partner's active registration for [`TYPE`] satisfies
/// `holds`, and returns it.
pub async fn registration_when(
    world: &World,
    partner: &str,
    what: &str,
    holds: impl Fn(&rpb::Registration) -> bool,
) -> rpb::Registration {
    test_support::eventually(what, Duration::from_secs(5), || {
        let mut registry = world.registry.clone();
        let request = rpb::GetCallbackRequest {
            partner_id: partner.into(),
            notification_type: TYPE,
        };
        let holds = &holds;
        async move {
            let registration = registry.get_callback(request).await.ok()?.into_inner();
            holds(&registration).then_some(registration)
        }
    })
    .await
    .unwrap()
}

/// Publishes one event and answers its delivery id (the partner has a
/// subscriber).
pub async fn publish_one(
    client: &DispatcherServiceClient<Channel>,
    partner: &str,
    payload: &str,
) -> String {
    client
        .clone()
        .publish(publish(partner, payload))
        .await
        .unwrap()
        .into_inner()
        .delivery_id
        .expect("the partner has an active registration")
}

pub fn publish(partner: &str, payload: &str) -> dpb::PublishRequest {
    dpb::PublishRequest {
        partner_id: partner.into(),
        notification_type: TYPE,
        payload_json: payload.into(),
        idempotency_key: None,
        occurred_at: None,
        ordering_key: None,
    }
}

/// Waits until every delivery in `db` is marked delivered.
pub async fn all_delivered(db: &tokio_postgres::Client, deadline: Duration) {
    test_support::eventually(
        "every delivery to be marked delivered",
        deadline,
        || async {
            let left: i64 = db
                .query_one(
                    "SELECT count(*) FROM deliveries WHERE status <> 'delivered'",
                    &[],
                )
                .await
                .ok()?
                .get(0);
            (left == 0).then_some(())
        },
    )
    .await
    .unwrap();
}

/// Waits for `n` requests at `receiver`; answers their bodies, sorted.
pub async fn sorted_bodies(receiver: &WebhookReceiver, n: usize, timeout: Duration) -> Vec<String> {
    let mut bodies: Vec<String> = receiver
        .wait_for_requests(n, timeout)
        .await
        .unwrap()
        .iter()
        .map(|r| r.body_text().into_owned())
        .collect();
    bodies.sort();
    bodies
}

/// Waits until the delivery reaches `status`, and returns it.
pub async fn delivery_with_status(
    client: &DispatcherServiceClient<Channel>,
    delivery_id: &str,
    status: dpb::DeliveryStatus,
    deadline: Duration,
) -> dpb::Delivery {
    test_support::eventually(
        &format!("delivery {delivery_id} to be {status:?}"),
        deadline,
        || {
            let mut client = client.clone();
            let request = dpb::GetDeliveryRequest {
                delivery_id: delivery_id.into(),
                partner_id: None,
            };
            async move {
                let delivery = client.get_delivery(request).await.ok()?.into_inner();
                (delivery.status() == status).then_some(delivery)
            }
        },
    )
    .await
    .unwrap()
}
