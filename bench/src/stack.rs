//! The system under test: the real registry and dispatcher binaries (of the
//! profile the bench was built with) as separate processes on fresh
//! databases, partners registered against the bench's receiver, and gRPC
//! publishers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use callbacks_proto::dispatcher::v1 as dpb;
use callbacks_proto::registry::v1 as rpb;
use dpb::dispatcher_service_client::DispatcherServiceClient;
use rpb::registry_service_client::RegistryServiceClient;
use test_support::TestDb;
use test_support::process::{Service, env, free_port};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::measure;
use crate::receiver::Receiver;

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Dispatcher settings a scenario may change.
#[derive(Debug, Clone)]
pub struct DispatcherSettings {
    pub workers: bool,
    pub response_timeout: &'static str,
    /// More variables, set after (and so over) the stack's own.
    pub extra_env: Vec<(String, String)>,
}

impl Default for DispatcherSettings {
    fn default() -> Self {
        Self {
            workers: true,
            response_timeout: "15s",
            extra_env: Vec::new(),
        }
    }
}

/// Peak resident memory of the services, in MiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeakRss {
    pub dispatcher: f64,
    pub registry: f64,
}

impl PeakRss {
    /// The larger of each, over two stacks (or two moments).
    pub fn max(self, other: Self) -> Self {
        Self {
            dispatcher: self.dispatcher.max(other.dispatcher),
            registry: self.registry.max(other.registry),
        }
    }

    /// The line every report ends with.
    pub fn note(&self) -> String {
        format!(
            "Peak RSS: dispatcher {:.0} MiB, registry {:.0} MiB.",
            self.dispatcher, self.registry
        )
    }
}

pub struct Stack {
    pub registry: Service,
    pub dispatchers: Vec<Service>,
    pub receiver: Arc<Receiver>,
    pub dispatch_db: TestDb,
    registry_url: String,
    _registry_db: TestDb,
    /// A few clients per dispatcher, by its index.
    clients: Vec<Vec<DispatcherServiceClient<Channel>>>,
    /// Which dispatcher `publisher` answers clients of.
    publish_via: AtomicUsize,
    next: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("dispatchers", &self.dispatchers.len())
            .finish()
    }
}

impl Stack {
    pub async fn start() -> anyhow::Result<Self> {
        let registry_db = TestDb::new().await?;
        let dispatch_db = TestDb::new().await?;
        let receiver = Receiver::start().await?;
        let addr = loopback(free_port()?);
        let registry = Service::start(
            "registry-service",
            addr,
            env(&[
                ("REGISTRY_LISTEN", &addr.to_string()),
                ("REGISTRY_ADMIN_LISTEN", "127.0.0.1:0"),
                ("REGISTRY_DATABASE_URL", registry_db.url()),
                ("REGISTRY_ALLOW_HTTP_CALLBACKS", "true"),
                // The scenarios measure delivery, not the token check (one
                // SHA-256 of a short token per call).
                ("REGISTRY_OPEN_GRPC", "true"),
                ("REGISTRY_ALLOWED_CALLBACK_NETWORKS", "127.0.0.0/8"),
                (
                    "REGISTRY_ENCRYPTION_KEY",
                    "YmVuY2gtZW5jcnlwdGlvbi1rZXktMzItYnl0ZXMhISE=",
                ),
            ]),
            None,
        )
        .await?;
        Ok(Self {
            registry,
            dispatchers: Vec::new(),
            receiver,
            dispatch_db,
            registry_url: format!("http://{addr}"),
            _registry_db: registry_db,
            clients: Vec::new(),
            publish_via: AtomicUsize::new(0),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Starts a dispatcher; publishers use the first one started, unless
    /// told otherwise (`publish_via`).
    pub async fn add_dispatcher(&mut self, settings: DispatcherSettings) -> anyhow::Result<usize> {
        let addr = loopback(free_port()?);
        let mut variables = env(&[
            ("DISPATCHER_LISTEN", &addr.to_string()),
            ("DISPATCHER_ADMIN_LISTEN", "127.0.0.1:0"),
            ("DISPATCHER_DATABASE_URL", self.dispatch_db.url()),
            ("DISPATCHER_REGISTRY_URL", &self.registry_url),
            ("DISPATCHER_ALLOW_HTTP_CALLBACKS", "true"),
            ("DISPATCHER_OPEN_GRPC", "true"),
            ("DISPATCHER_ALLOWED_CALLBACK_NETWORKS", "127.0.0.0/8"),
            (
                "DISPATCHER_DELIVERY_WORKERS",
                if settings.workers { "true" } else { "false" },
            ),
            ("DISPATCHER_RESPONSE_TIMEOUT", settings.response_timeout),
            ("DISPATCHER_LEASE", "60s"),
            ("DISPATCHER_REGISTRY_CACHE_TTL", "60s"),
            ("DISPATCHER_DB_POOL_SIZE", "24"),
        ]);
        // Later variables win: a scenario's own settings override these.
        variables.extend(settings.extra_env);
        let service = Service::start("dispatcher-service", addr, variables, None).await?;
        // A few HTTP/2 connections, so that one connection's flow control
        // is not the bottleneck.
        let mut clients = Vec::new();
        for _ in 0..4 {
            let channel = Channel::from_shared(format!("http://{addr}"))?
                .tcp_nodelay(true)
                .connect()
                .await?;
            clients.push(DispatcherServiceClient::new(channel));
        }
        self.clients.push(clients);
        self.dispatchers.push(service);
        Ok(self.dispatchers.len() - 1)
    }

    pub fn publisher(&self) -> DispatcherServiceClient<Channel> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let clients = &self.clients[self.publish_via.load(Ordering::Relaxed)];
        clients[i % clients.len()].clone()
    }

    /// Publishers use the dispatcher at `index` from now on (the first one
    /// started until then).
    pub fn publish_via(&self, index: usize) {
        self.publish_via.store(index, Ordering::Relaxed);
    }

    /// `n` partners, each with a callback for type 5 at `{path}/{i}`.
    pub async fn partners(&self, n: usize, path: &str) -> anyhow::Result<Vec<String>> {
        let receiver = self.receiver.clone();
        let path = path.to_owned();
        self.partners_at(n, move |i| receiver.url(&format!("{path}/{i}")))
            .await
    }

    /// `n` partners, the `i`th with a callback for type 5 at `url(i)`;
    /// registered a few at a time, since a scenario may want thousands.
    pub async fn partners_at(
        &self,
        n: usize,
        url: impl Fn(usize) -> String + Send + Sync + 'static,
    ) -> anyhow::Result<Vec<String>> {
        const AT_ONCE: usize = 8;
        let url = Arc::new(url);
        let mut tasks = tokio::task::JoinSet::new();
        for first in 0..AT_ONCE.min(n) {
            let mut registry = RegistryServiceClient::connect(self.registry_url.clone()).await?;
            let url = url.clone();
            tasks.spawn(async move {
                let mut ids = Vec::new();
                for i in (first..n).step_by(AT_ONCE) {
                    ids.push((i, register(&mut registry, i, url(i)).await?));
                }
                Ok::<_, anyhow::Error>(ids)
            });
        }
        let mut ids = vec![String::new(); n];
        while let Some(registered) = tasks.join_next().await {
            for (i, id) in registered?? {
                ids[i] = id;
            }
        }
        Ok(ids)
    }

    pub fn dispatcher_pid(&self, index: usize) -> u32 {
        self.dispatchers
            .get(index)
            .and_then(Service::pid)
            .unwrap_or(0)
    }

    /// Brings the dispatch database to the state of a system that has run
    /// for a while: dead rows vacuumed, statistics current, no checkpoint
    /// pending. ANALYZE also makes every connection re-plan its prepared
    /// statements: a plan made while the tables were empty (a sequential
    /// scan of `deliveries`) would otherwise stay until autovacuum's first
    /// ANALYZE, and get slower with every row added.
    pub async fn settle(&self) -> anyhow::Result<()> {
        let db = self.dispatch_db.client().await?;
        // One at a time: VACUUM refuses to run inside the implicit
        // transaction of a multi-statement query.
        for statement in [
            "VACUUM (ANALYZE) deliveries",
            "VACUUM (ANALYZE) events",
            "VACUUM (ANALYZE) attempts",
        ] {
            db.batch_execute(statement).await?;
        }
        self.checkpoint().await
    }

    /// Flushes what earlier work left in the WAL, so that no checkpoint
    /// it set off lands in what is measured next.
    pub async fn checkpoint(&self) -> anyhow::Result<()> {
        let db = self.dispatch_db.client().await?;
        db.batch_execute("CHECKPOINT").await?;
        Ok(())
    }

    /// Publishes and delivers `n` events to `partners`, then settles: the
    /// steady state that latency is measured in (warm caches and
    /// connections, tables with history and statistics).
    pub async fn warm(&self, partners: &[String], n: usize) -> anyhow::Result<()> {
        self.receiver.take();
        prefill(self, partners, n, 100, 4).await?;
        anyhow::ensure!(
            self.receiver.wait_for(n, Duration::from_secs(300)).await,
            "the warm-up deliveries did not arrive"
        );
        self.receiver.take();
        self.settle().await
    }

    /// How many events the dispatch database holds.
    pub async fn stored_events(&self) -> anyhow::Result<i64> {
        let client = self.dispatch_db.client().await?;
        Ok(client
            .query_one("SELECT count(*) FROM events", &[])
            .await?
            .get(0))
    }

    /// Peak resident memory of each service so far (of the largest
    /// dispatcher, when there are several).
    pub fn peak_rss(&self) -> PeakRss {
        PeakRss {
            dispatcher: (0..self.dispatchers.len())
                .map(|i| measure::peak_rss_mib(self.dispatcher_pid(i)))
                .fold(0.0, f64::max),
            registry: self.registry.pid().map_or(0.0, measure::peak_rss_mib),
        }
    }
}

/// Partner `bench {i}`, with a callback for type 5 at `url`; answers its id.
async fn register(
    registry: &mut RegistryServiceClient<Channel>,
    i: usize,
    url: String,
) -> anyhow::Result<String> {
    let partner = registry
        .create_partner(rpb::CreatePartnerRequest {
            name: format!("bench {i}"),
            key_label: String::new(),
        })
        .await?
        .into_inner()
        .partner
        .unwrap_or_default()
        .partner_id;
    registry
        .upsert_callback(rpb::UpsertCallbackRequest {
            partner_id: partner.clone(),
            notification_type: 5,
            callback_url: url,
            callback_user_name: None,
            callback_password: None,
            merchant_id: None,
            retry_policy: None,
            signature_scheme: None,
        })
        .await?;
    Ok(partner)
}

pub fn event(partner: &str, n: usize) -> dpb::PublishRequest {
    dpb::PublishRequest {
        partner_id: partner.to_owned(),
        notification_type: 5,
        payload_json: format!(
            r#"{{"processUniqueId":"bench-{n}","amount":{n},"status":"settled"}}"#
        ),
        idempotency_key: None,
        occurred_at: None,
        ordering_key: None,
    }
}

/// Each published delivery's id, and when the call that published it was
/// sent: what publish-to-receipt latency and lost deliveries are read
/// against.
pub type Sent = HashMap<Uuid, Instant>;

/// Publishes `total` events round-robin over `partners` in batches of
/// `batch`, `concurrency` calls at a time. Answers what was sent, and the
/// time it took.
pub async fn prefill(
    stack: &Stack,
    partners: &[String],
    total: usize,
    batch: usize,
    concurrency: usize,
) -> anyhow::Result<(Sent, Duration)> {
    let started = Instant::now();
    let counter = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (counter, partners, mut client) =
            (counter.clone(), partners.to_vec(), stack.publisher());
        tasks.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            loop {
                let start = counter.fetch_add(batch, Ordering::Relaxed);
                if start >= total {
                    return Ok::<_, anyhow::Error>(sent);
                }
                let events = (start..(start + batch).min(total))
                    .map(|n| event(&partners[n % partners.len()], n))
                    .collect();
                let at = Instant::now();
                let published = client
                    .publish_batch(dpb::PublishBatchRequest { events })
                    .await?
                    .into_inner();
                sent.extend(
                    published
                        .results
                        .into_iter()
                        .filter_map(|r| r.delivery_id)
                        .filter_map(|id| Uuid::try_parse(&id).ok())
                        .map(|id| (id, at)),
                );
            }
        }));
    }
    let mut sent = Sent::with_capacity(total);
    for task in tasks {
        sent.extend(task.await??);
    }
    Ok((sent, started.elapsed()))
}
