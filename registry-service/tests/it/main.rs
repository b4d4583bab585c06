//! Integration tests of the registry: the real gRPC server on a free port,
//! a real tonic client, and a fresh Postgres database per test. One test
//! binary, one module per area.

// A failed unwrap is a failed test, which is what a test wants.
#![allow(clippy::unwrap_used)]

mod api_keys;
mod callbacks;
mod changes;
mod error_state;
mod key_rotation;
mod notification_types;
mod partners;
mod pausing;
mod retry_policies;
mod schema;
mod secrets;
mod server;

use std::net::SocketAddr;

use callbacks_proto::registry::v1 as pb;
use pb::registry_service_client::RegistryServiceClient;
use registry_service::{Application, Config};
use test_support::TestDb;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// A running registry with its own database. Stops when dropped.
#[derive(Debug)]
pub struct TestRegistry {
    pub client: RegistryServiceClient<Channel>,
    /// The connection `client` uses, for other clients (health, reflection).
    pub channel: Channel,
    pub addr: SocketAddr,
    pub db: TestDb,
    _stop: oneshot::Sender<()>,
}

impl TestRegistry {
    /// The strict defaults of production: https only, public hosts only.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::new().await.expect("test database");
        let mut config = Config::for_database(db.url());
        adjust(&mut config);
        let (channel, addr, stop) = serve(config).await;
        Self {
            client: RegistryServiceClient::new(channel.clone()),
            channel,
            addr,
            db,
            _stop: stop,
        }
    }

    /// A new partner; returns its id and its first API key's token.
    pub async fn partner(&mut self, name: &str) -> (String, String) {
        let created = self
            .client
            .create_partner(pb::CreatePartnerRequest {
                name: name.into(),
                key_label: "first".into(),
            })
            .await
            .expect("create partner")
            .into_inner();
        let partner = created.partner.expect("partner");
        let key = created.api_key.expect("api key");
        (partner.partner_id, key.token)
    }

    /// The newest version in the change log.
    pub async fn changes_version(&mut self) -> u64 {
        self.client
            .list_changes(pb::ListChangesRequest { after_version: 0 })
            .await
            .expect("list changes")
            .into_inner()
            .version
    }

    /// What the dispatcher is told of (partner, type).
    /// The health events after `after` (at most `limit`; 0: the default).
    pub async fn health_after(&mut self, after: i64, limit: u32) -> Vec<pb::HealthEvent> {
        self.client
            .list_health_events(pb::ListHealthEventsRequest {
                after_id: after,
                limit,
            })
            .await
            .unwrap()
            .into_inner()
            .events
    }

    pub async fn resolve(
        &mut self,
        partner_id: &str,
        notification_type: i32,
    ) -> pb::ResolvedCallback {
        self.client
            .resolve_callback(pb::ResolveCallbackRequest {
                partner_id: partner_id.into(),
                notification_type,
            })
            .await
            .expect("resolve callback")
            .into_inner()
    }

    /// Registers `url` for (partner, type) and returns the response.
    pub async fn upsert(
        &mut self,
        partner_id: &str,
        notification_type: i32,
        url: &str,
    ) -> pb::UpsertCallbackResponse {
        self.client
            .upsert_callback(upsert_request(partner_id, notification_type, url))
            .await
            .expect("upsert callback")
            .into_inner()
    }
}

pub fn upsert_request(
    partner_id: &str,
    notification_type: i32,
    url: &str,
) -> pb::UpsertCallbackRequest {
    pb::UpsertCallbackRequest {
        partner_id: partner_id.into(),
        notification_type,
        callback_url: url.into(),
        callback_user_name: None,
        callback_password: None,
        merchant_id: None,
        retry_policy: None,
        signature_scheme: None,
    }
}

/// A registry serving `config`: a connection to it, its address, and what
/// stops it when dropped.
pub async fn serve(config: Config) -> (Channel, SocketAddr, oneshot::Sender<()>) {
    let app = Application::build(config).await.expect("registry builds");
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect()
        .await
        .expect("registry accepts connections");
    (channel, addr, stop)
}

/// Asserts `result` failed with `code`, and returns the status.
#[track_caller]
pub fn expect_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Ok(value) => panic!("expected {code:?}, got Ok({value:?})"),
        Err(status) => {
            assert_eq!(status.code(), code, "unexpected status: {status:?}");
            status
        }
    }
}

/// Asserts INVALID_ARGUMENT whose BadRequest detail names `field` with a
/// rule containing `rule`.
#[track_caller]
pub fn expect_violation<T: std::fmt::Debug>(result: Result<T, Status>, field: &str, rule: &str) {
    let status = expect_code(result, Code::InvalidArgument);
    let details = status
        .get_details_bad_request()
        .expect("a BadRequest detail");
    assert!(
        details
            .field_violations
            .iter()
            .any(|v| v.field == field && v.description.contains(rule)),
        "no violation of {field} containing {rule:?} in {:?}",
        details.field_violations
    );
}
