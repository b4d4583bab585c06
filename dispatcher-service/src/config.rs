//! Settings, from flags with environment fall-backs (`--help` lists them
//! all). Durations take humantime values: `500ms`, `15s`, `2m`, `1h`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ipnet::IpNet;
use secrecy::SecretString;
use service_kit::LogFormat;

use crate::domain::RetryPolicy;

/// The default retry schedule: about two days in all.
pub const DEFAULT_SCHEDULE: &str = "5s,30s,2m,10m,30m,1h,3h,6h,12h,24h";

#[derive(Debug, Clone, Parser)]
#[command(
    name = "dispatcher-service",
    version,
    about = "Partner Callbacks dispatcher: durable publish and HTTPS delivery with retries."
)]
pub struct Config {
    /// Address the gRPC server listens on (port 0 picks a free port).
    #[arg(long, env = "DISPATCHER_LISTEN", default_value = "127.0.0.1:50052")]
    pub listen: SocketAddr,

    /// Address of the admin HTTP server: `/metrics` (Prometheus), `/healthz`,
    /// `/readyz` (port 0 picks a free port).
    #[arg(
        long,
        env = "DISPATCHER_ADMIN_LISTEN",
        default_value = "127.0.0.1:9102"
    )]
    pub admin_listen: SocketAddr,

    /// The dispatcher's own database. Created at start-up if missing (when
    /// the role may), then migrated.
    #[arg(
        long,
        env = "DISPATCHER_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/callbacks_dispatch",
        hide_env_values = true
    )]
    pub database_url: String,

    #[arg(long, env = "DISPATCHER_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: u32,

    /// The registry's gRPC endpoint.
    #[arg(
        long,
        env = "DISPATCHER_REGISTRY_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub registry_url: String,

    /// This dispatcher's token for the registry (its `dispatcher=` entry
    /// in `REGISTRY_CALLERS`).
    #[arg(long, env = "DISPATCHER_REGISTRY_TOKEN", hide_env_values = true, value_parser = service_kit::settings::secret)]
    pub registry_token: Option<SecretString>,

    /// The internal callers and their tokens, comma-separated `role=token`
    /// (roles: `publisher`, `gateway`, `operator`; `grpc::callers` says
    /// which may call what). Required unless `--open-grpc`.
    #[arg(long, env = "DISPATCHER_CALLERS", value_delimiter = ',', hide_env_values = true, value_parser = service_kit::settings::secret)]
    pub callers: Vec<SecretString>,

    /// Serve gRPC to any caller, without tokens: for tests and local
    /// experiments only.
    #[arg(long, env = "DISPATCHER_OPEN_GRPC")]
    pub open_grpc: bool,

    /// The longest a resolved callback (URL, credentials, secrets, or "no
    /// active registration") is kept. A kept answer is used only once the
    /// registry's changes up to the delivery's claim are applied to it, so
    /// this bounds memory and the cost of a bug, not how soon a partner's
    /// change is seen (at once).
    #[arg(long, env = "DISPATCHER_REGISTRY_CACHE_TTL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub registry_cache_ttl: Duration,

    /// Waits between attempts, comma-separated; one attempt more is made
    /// than there are waits.
    #[arg(long, env = "DISPATCHER_RETRY_SCHEDULE", default_value = DEFAULT_SCHEDULE)]
    pub retry_schedule: String,

    /// Each wait is spread by up to ± this fraction.
    #[arg(long, env = "DISPATCHER_RETRY_JITTER", default_value_t = 0.2)]
    pub retry_jitter: f64,

    /// The longest `Retry-After` honoured.
    #[arg(long, env = "DISPATCHER_MAX_RETRY_AFTER", default_value = "1h", value_parser = humantime::parse_duration)]
    pub max_retry_after: Duration,

    #[arg(long, env = "DISPATCHER_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,

    /// The whole exchange with a partner's endpoint, answer included.
    #[arg(long, env = "DISPATCHER_RESPONSE_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub response_timeout: Duration,

    /// How long a claimed delivery stays exclusive to a worker; must exceed
    /// the response timeout.
    #[arg(long, env = "DISPATCHER_LEASE", default_value = "60s", value_parser = humantime::parse_duration)]
    pub lease: Duration,

    #[arg(long, env = "DISPATCHER_BATCH_SIZE", default_value_t = 128)]
    pub batch_size: u32,

    /// Most attempts in flight in this process; also the idle keep-alive
    /// connections kept per callback host.
    #[arg(long, env = "DISPATCHER_MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,

    /// Most attempts in flight to one registration.
    #[arg(long, env = "DISPATCHER_PER_ENDPOINT_CONCURRENCY", default_value_t = 8)]
    pub per_endpoint_concurrency: usize,

    /// How often to look for due work when nothing wakes the worker, and
    /// to sweep behind the queue's cursor (see `storage::queue`).
    #[arg(long, env = "DISPATCHER_POLL_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,

    /// How long a delivery to a paused registration waits before it is
    /// looked at again: the most a resume takes to show. Shorter costs a
    /// claim per held delivery per interval.
    #[arg(long, env = "DISPATCHER_PAUSED_RECHECK", default_value = "30s", value_parser = humantime::parse_duration)]
    pub paused_recheck: Duration,

    /// How long an idempotency key is remembered: a publish repeating it
    /// within this window is answered with the first event, a later one is
    /// a new event. 24 hours, as Stripe's and Svix's keys.
    #[arg(long, env = "DISPATCHER_IDEMPOTENCY_WINDOW", default_value = "24h", value_parser = humantime::parse_duration)]
    pub idempotency_window: Duration,

    /// How long events, deliveries and attempts are kept after a
    /// delivery's last attempt (or after publication, for an event nobody
    /// subscribed to); `off` keeps them for ever. A pending delivery is
    /// kept whatever its age.
    #[arg(long, env = "DISPATCHER_RETENTION", default_value = "30days", value_parser = retention)]
    pub retention: Retention,

    /// The partner (the operators' own) that also gets every health event
    /// (a registration entered its error state, recovered, or was paused
    /// automatically) as a notification of type 900, delivered to its
    /// registration for that type like any event. Unset: partners only.
    #[arg(long, env = "DISPATCHER_HEALTH_OPERATOR_PARTNER")]
    pub health_operator_partner: Option<uuid::Uuid>,

    /// How long an endpoint stays throttled (held, or allowed fewer
    /// attempts at once, after 429/502/503/504 answers or timeouts) before
    /// its partner and the operators get a `throttled` health notification:
    /// once per streak. An hour: long enough that a burst of 429s a
    /// receiver rides out says nothing, short enough to hear of a
    /// receiver that cannot keep up before a backlog builds for a day.
    #[arg(long, env = "DISPATCHER_THROTTLED_NOTICE_AFTER", default_value = "1h", value_parser = humantime::parse_duration)]
    pub throttled_notice_after: Duration,

    /// How many deliveries of a recovery job this replica makes due again
    /// per second: a large recovery joins the queue at this pace instead
    /// of ahead of fresh deliveries.
    #[arg(long, env = "DISPATCHER_RECOVERY_RATE", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub recovery_rate: u32,

    /// On SIGTERM, how long in-flight attempts may finish before their
    /// deliveries are released to other replicas.
    #[arg(long, env = "DISPATCHER_SHUTDOWN_GRACE", default_value = "20s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// Non-public networks (CIDR, comma-separated) deliveries may go to
    /// anyway, e.g. `127.0.0.0/8` for local testing.
    #[arg(
        long,
        env = "DISPATCHER_ALLOWED_CALLBACK_NETWORKS",
        value_delimiter = ','
    )]
    pub allowed_callback_networks: Vec<IpNet>,

    /// Name servers (`IP:PORT`, comma-separated) to resolve callback hosts
    /// with, over UDP and TCP, instead of the system's resolver: e.g. one
    /// that answers only public names. Whatever answers, an address that is
    /// not public is refused.
    #[arg(long, env = "DISPATCHER_DNS_SERVERS", value_delimiter = ',')]
    pub dns_servers: Vec<SocketAddr>,

    /// Deliver to plain `http://` URLs too (local use only).
    #[arg(long, env = "DISPATCHER_ALLOW_HTTP_CALLBACKS")]
    pub allow_http_callbacks: bool,

    /// PEM files of extra certificate authorities to trust (comma-separated).
    #[arg(long, env = "DISPATCHER_EXTRA_CA_FILES", value_delimiter = ',')]
    pub extra_ca_files: Vec<PathBuf>,

    /// Largest payload (or test rawBody) accepted, in bytes.
    #[arg(long, env = "DISPATCHER_MAX_PAYLOAD_BYTES", default_value_t = 256 * 1024)]
    pub max_payload_bytes: usize,

    /// Largest gRPC request message accepted, in bytes (a `PublishBatch`
    /// holds all its payloads in one message); a larger one is refused
    /// with `RESOURCE_EXHAUSTED` before it is read.
    #[arg(long, env = "DISPATCHER_MAX_MESSAGE_BYTES", default_value_t = service_kit::message_cap::DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,

    /// Run the delivery workers (off: accept and store only).
    #[arg(long, env = "DISPATCHER_DELIVERY_WORKERS", default_value_t = true, action = clap::ArgAction::Set)]
    pub delivery_workers: bool,

    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

impl Config {
    pub fn retry_policy(&self) -> anyhow::Result<RetryPolicy> {
        let schedule = RetryPolicy::parse_schedule(&self.retry_schedule)
            .map_err(|e| anyhow::anyhow!("DISPATCHER_RETRY_SCHEDULE: {e}"))?;
        RetryPolicy::new(schedule, self.retry_jitter, self.max_retry_after)
            .map_err(|e| anyhow::anyhow!(e))
    }

    /// Defaults on free ports, for tests and embedding; gRPC open to any
    /// caller.
    pub fn for_database(database_url: &str, registry_url: &str) -> Self {
        let mut config = Self::parse_from(["dispatcher-service"]);
        config.listen = service_kit::settings::ANY_LOOPBACK_PORT;
        config.admin_listen = service_kit::settings::ANY_LOOPBACK_PORT;
        config.database_url = database_url.to_owned();
        config.registry_url = registry_url.to_owned();
        config.open_grpc = true;
        config
    }

    /// Who may call: the configured tokens, or anybody with `--open-grpc`.
    pub fn callers(&self) -> anyhow::Result<service_kit::callers::Callers> {
        service_kit::callers::Callers::configured(
            self.open_grpc,
            &self.callers,
            crate::grpc::callers::ROLES,
        )
    }
}

/// The retention period: `None` keeps everything.
pub type Retention = Option<Duration>;

/// Parses `DISPATCHER_RETENTION`: `off`, or a humantime period of at least
/// a minute.
fn retention(text: &str) -> Result<Retention, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let period = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if period < Duration::from_secs(60) {
        return Err("a retention period must be at least a minute (or `off`)".into());
    }
    Ok(Some(period))
}
