//! Wiring: database, registry client, HTTP client, the delivery loop and
//! the gRPC server (with health and reflection). `build` binds before it
//! returns, so tests can read the port back.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use callbacks_proto::dispatcher::v1::dispatcher_service_server::DispatcherServiceServer;
use secrecy::ExposeSecret as _;
use service_kit::callers::{CallerLayer, Callers};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::delivery::http::{Deliverer, HttpSettings};
use crate::delivery::worker::{Worker, WorkerSettings};
use crate::domain::RetryPolicy;
use crate::grpc::{DispatcherGrpc, callers};
use crate::registry::RegistryClient;
use crate::service::Dispatcher;
use crate::service::health::HealthRelay;
use crate::service::housekeeping::Housekeeping;
use crate::storage::{self, DbPool};

/// How long calls in progress at SIGTERM may take to finish.
const CALL_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

pub struct Application {
    listener: TcpListener,
    admin: TcpListener,
    pool: storage::DbPool,
    grpc: DispatcherGrpc,
    max_message_bytes: usize,
    worker: Option<Arc<Worker>>,
    recovery_rate: u32,
    housekeeping: Housekeeping,
    health: HealthRelay,
    reporter: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    callers: Callers,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // Count from the first request on, not from the first scrape.
        service_kit::metrics::handle();
        crate::metrics_help::describe();
        let policy = config.retry_policy()?;
        anyhow::ensure!(
            config.lease > config.response_timeout + config.connect_timeout,
            "DISPATCHER_LEASE must exceed the connect and response timeouts together"
        );
        let pool = storage::connect(&config.database_url, config.db_pool_size)
            .await
            .context("connecting to the dispatch database")?;
        let callers = config.callers().context("DISPATCHER_CALLERS")?;
        if callers.is_open() {
            tracing::warn!(
                "gRPC is open to any caller (DISPATCHER_OPEN_GRPC): for tests and local experiments only"
            );
        }
        let registry_token = config.registry_token.as_ref().map(|t| t.expose_secret());
        let (registry, reporter) = RegistryClient::new(
            &config.registry_url,
            registry_token,
            config.registry_cache_ttl,
        )?;
        let worker = delivery_worker(&config, &pool, &registry, policy)?;
        let health = HealthRelay {
            pool: pool.clone(),
            registry: registry.clone(),
            operators: config.health_operator_partner,
            every: config.poll_interval,
            throttled_after: config.throttled_notice_after,
        };
        let dispatcher = Arc::new(Dispatcher::new(pool.clone(), registry, worker.clone()));
        let admin = service_kit::metrics::bind_admin(config.admin_listen)
            .await
            .with_context(|| format!("binding {}", config.admin_listen))?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        Ok(Self {
            listener,
            admin,
            pool,
            grpc: DispatcherGrpc::new(dispatcher, config.max_payload_bytes),
            max_message_bytes: config.max_message_bytes,
            worker,
            recovery_rate: config.recovery_rate,
            health,
            housekeeping: Housekeeping {
                idempotency_window: config.idempotency_window,
                retention: config.retention,
            },
            reporter: Box::pin(reporter),
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

    /// Serves until `shutdown`. Then claims no more and accepts no calls;
    /// once the calls in progress are answered (at most `CALL_DRAIN`), lets
    /// in-flight attempts finish within the grace period and releases the
    /// rest.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // `signalled` at the signal: stop claiming and accepting calls.
        // `stop` once the calls in progress are answered (or given up on).
        let signalled = CancellationToken::new();
        let stop = CancellationToken::new();
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<DispatcherServiceServer<DispatcherGrpc>>()
            .await;
        let reporter = tokio::spawn(self.reporter);
        let background = Background::start(
            &self.pool,
            self.recovery_rate,
            self.worker.clone(),
            (self.housekeeping, self.health),
            &signalled,
        );
        let worker = self
            .worker
            .map(|worker| tokio::spawn(worker.run(signalled.clone(), stop.clone())));
        tracing::info!(addr = %self.listener.local_addr()?, admin = %self.admin.local_addr()?, "dispatcher listening");
        let admin = spawn_admin(self.admin, &self.pool, &stop);
        let signal = {
            let signalled = signalled.clone();
            async move {
                shutdown.await;
                signalled.cancel();
            }
        };
        let served = serve_calls(
            self.listener,
            self.grpc,
            self.callers,
            self.max_message_bytes,
            health_service,
            signal,
            &signalled,
        )
        .await;
        stop.cancel();
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        reporter.abort();
        background.join().await;
        let _ = admin.await;
        tracing::info!("dispatcher stopped");
        served
    }
}

/// The jobs every replica runs beside delivering, until the signal:
/// recoveries, housekeeping, the health relay, and the repair of ordered
/// lanes.
struct Background(Vec<tokio::task::JoinHandle<()>>);

impl Background {
    fn start(
        pool: &DbPool,
        recovery_rate: u32,
        worker: Option<Arc<Worker>>,
        (housekeeping, health): (Housekeeping, HealthRelay),
        signalled: &CancellationToken,
    ) -> Self {
        Self(vec![
            tokio::spawn(crate::service::recovery::run(
                pool.clone(),
                recovery_rate,
                worker,
                signalled.clone(),
            )),
            tokio::spawn(housekeeping.run(pool.clone(), signalled.clone())),
            tokio::spawn(health.run(signalled.clone())),
            tokio::spawn(crate::service::housekeeping::repair_lanes(
                pool.clone(),
                signalled.clone(),
            )),
        ])
    }

    /// Waits for every job to end.
    async fn join(self) {
        for job in self.0 {
            let _ = job.await;
        }
    }
}

/// Serves gRPC calls until `signal`, then gives the calls in progress a
/// bounded time to finish: a client holding its connection open must not
/// push shutdown past the grace.
async fn serve_calls(
    listener: TcpListener,
    grpc: DispatcherGrpc,
    allowed: Callers,
    max_message_bytes: usize,
    health_service: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    signal: impl Future<Output = ()> + Send + 'static,
    signalled: &CancellationToken,
) -> anyhow::Result<()> {
    let router = tonic::transport::Server::builder()
        .layer(service_kit::grpc_layer::GrpcServerLayer)
        .layer(CallerLayer::new(allowed, callers::policy))
        .add_service(health_service);
    let server = service_kit::reflection::with_reflection(
        router,
        &[
            callbacks_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ],
    )?
    .add_service(DispatcherServiceServer::new(grpc).max_decoding_message_size(max_message_bytes))
    .serve_with_incoming_shutdown(service_kit::nodelay_incoming(listener), signal);
    tokio::pin!(server);
    let served = tokio::select! {
        served = &mut server => served,
        () = async {
            signalled.cancelled().await;
            tokio::time::sleep(CALL_DRAIN).await;
        } => {
            tracing::warn!(after = ?CALL_DRAIN, "calls still open after the signal; closing them");
            Ok(())
        }
    };
    served.map_err(Into::into)
}

/// The delivery loop this process runs, unless its workers are off.
fn delivery_worker(
    config: &Config,
    pool: &DbPool,
    registry: &Arc<RegistryClient>,
    policy: RetryPolicy,
) -> anyhow::Result<Option<Arc<Worker>>> {
    if !config.delivery_workers {
        tracing::warn!("delivery workers are off: events are stored, not delivered");
        return Ok(None);
    }
    let deliverer = Deliverer::new(HttpSettings {
        connect_timeout: config.connect_timeout,
        response_timeout: config.response_timeout,
        allowed_networks: config.allowed_callback_networks.clone(),
        allow_http: config.allow_http_callbacks,
        extra_ca_files: config.extra_ca_files.clone(),
        max_idle_per_host: config.max_in_flight,
        dns_servers: config.dns_servers.clone(),
    })
    .context("building the HTTPS client")?;
    Ok(Some(Worker::new(
        pool.clone(),
        registry.clone(),
        deliverer,
        policy,
        WorkerSettings {
            batch_size: config.batch_size,
            lease: config.lease,
            poll_interval: config.poll_interval,
            max_in_flight: config.max_in_flight,
            per_endpoint: config.per_endpoint_concurrency,
            defer_for: Duration::from_secs(1),
            paused_recheck: config.paused_recheck,
            shutdown_grace: config.shutdown_grace,
        },
    )))
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until `stop`.
fn spawn_admin(
    listener: TcpListener,
    pool: &DbPool,
    stop: &CancellationToken,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    let (ready, refresh) = (pool.clone(), pool.clone());
    let router = service_kit::metrics::admin_router(
        Arc::new(move || {
            let pool = ready.clone();
            Box::pin(async move { storage::ping(&pool).await })
        }),
        Arc::new(move || {
            let pool = refresh.clone();
            Box::pin(async move { storage::refresh_gauges(&pool).await })
        }),
    );
    tokio::spawn(service_kit::metrics::serve_admin(
        listener,
        router,
        stop.clone().cancelled_owned(),
    ))
}
