//! Wiring: builds the service from its configuration (database, migrations,
//! listener) and serves gRPC, with health and reflection, until told to
//! stop. `build` binds before it returns, so tests can read the port back.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use callbacks_proto::registry::v1::registry_service_server::RegistryServiceServer;
use tokio::net::TcpListener;

use service_kit::callers::{CallerLayer, Callers};

use crate::config::Config;
use crate::domain::UrlPolicy;
use crate::grpc::RegistryGrpc;
use crate::grpc::callers;
use crate::service::Registry;
use crate::storage;

#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    admin: TcpListener,
    grpc: RegistryGrpc,
    registry: Arc<Registry>,
    callers: Callers,
}

/// The use cases on a migrated database, with the configured key ring.
async fn registry(config: &Config) -> anyhow::Result<Registry> {
    let cipher = config.cipher()?;
    let pool = storage::connect(&config.database_url, config.db_pool_size)
        .await
        .context("connecting to the registry database")?;
    Ok(Registry::new(
        pool,
        &config.database_url,
        cipher,
        config.secret_rotation_grace(),
        config.auto_pause_after,
    ))
}

/// `registry-service reseal`: every stored secret sealed again under the
/// current key, beside running replicas.
pub async fn reseal(config: &Config, batch: i64) -> anyhow::Result<crate::service::ResealReport> {
    anyhow::ensure!(batch > 0, "--batch must be at least 1");
    let registry = registry(config).await?;
    let report = registry.reseal(batch).await?;
    tracing::info!(
        key_id = %crate::service::current_key_id(&registry),
        resealed = report.resealed,
        left = report.left,
        "re-seal finished"
    );
    Ok(report)
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // Count from the first request on, not from the first scrape.
        service_kit::metrics::handle();
        crate::metrics_help::describe();
        let callers = config.callers().context("REGISTRY_CALLERS")?;
        if callers.is_open() {
            tracing::warn!(
                "gRPC is open to any caller (REGISTRY_OPEN_GRPC): for tests and local experiments only"
            );
        }
        let registry = Arc::new(registry(&config).await?);
        registry.check_key_ring().await?;
        tracing::info!(
            key_id = %crate::service::current_key_id(&registry),
            "sealing secrets under this key"
        );
        let admin = service_kit::metrics::bind_admin(config.admin_listen)
            .await
            .with_context(|| format!("binding {}", config.admin_listen))?;
        let policy = UrlPolicy {
            allow_http: config.allow_http_callbacks,
            allowed_networks: config.allowed_callback_networks.clone(),
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        Ok(Self {
            listener,
            admin,
            grpc: RegistryGrpc::new(registry.clone(), policy),
            registry,
            callers,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has a local address")
    }

    /// The admin HTTP server's address (`/metrics`, `/healthz`, `/readyz`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .expect("a bound TCP listener has a local address")
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<RegistryServiceServer<RegistryGrpc>>()
            .await;
        tracing::info!(addr = %self.local_addr(), admin = %self.admin_addr(), "registry listening");
        let stop = tokio_util::sync::CancellationToken::new();
        let admin = {
            let (ready, refresh) = (self.registry.clone(), self.registry.clone());
            let router = service_kit::metrics::admin_router(
                Arc::new(move || {
                    let registry = ready.clone();
                    Box::pin(async move { registry.ping().await })
                }),
                Arc::new(move || {
                    let registry = refresh.clone();
                    Box::pin(async move { registry.refresh_gauges().await })
                }),
            );
            tokio::spawn(service_kit::metrics::serve_admin(
                self.admin,
                router,
                stop.clone().cancelled_owned(),
            ))
        };
        let stopping = stop.clone();
        let router = tonic::transport::Server::builder()
            .layer(service_kit::grpc_layer::GrpcServerLayer)
            .layer(CallerLayer::new(self.callers, callers::policy))
            .add_service(health_service);
        service_kit::reflection::with_reflection(
            router,
            &[
                callbacks_proto::FILE_DESCRIPTOR_SET,
                tonic_health::pb::FILE_DESCRIPTOR_SET,
            ],
        )?
        .add_service(RegistryServiceServer::new(self.grpc))
        .serve_with_incoming_shutdown(service_kit::nodelay_incoming(self.listener), async move {
            shutdown.await;
            stopping.cancel();
        })
        .await?;
        stop.cancel();
        let _ = admin.await;
        tracing::info!("registry stopped");
        Ok(())
    }
}
