//! Settings, from flags with environment fall-backs (`--help` lists them
//! all). The defaults talk to a registry on 127.0.0.1:50051.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use clap::Parser;
use secrecy::SecretString;
use service_kit::LogFormat;

use crate::limits::{Rate, RateLimits, RequestGuard};
use crate::server::ConnectionLimits;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "gateway",
    version,
    about = "Partner Callbacks gateway: the partners' REST API, over the registry's and dispatcher's gRPC APIs."
)]
pub struct Config {
    /// Address the HTTP server listens on (port 0 picks a free port).
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The registry's gRPC endpoint.
    #[arg(
        long,
        env = "GATEWAY_REGISTRY_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub registry_url: String,

    /// The dispatcher's gRPC endpoint. Until it is set, test notifications
    /// answer 503.
    #[arg(long, env = "GATEWAY_DISPATCHER_URL")]
    pub dispatcher_url: Option<String>,

    /// This gateway's token for the registry (its `gateway=` entry in
    /// `REGISTRY_CALLERS`).
    #[arg(long, env = "GATEWAY_REGISTRY_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    pub registry_token: Option<SecretString>,

    /// This gateway's token for the dispatcher (its `gateway=` entry in
    /// `DISPATCHER_CALLERS`).
    #[arg(long, env = "GATEWAY_DISPATCHER_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    pub dispatcher_token: Option<SecretString>,

    /// The operators' key for `/v1/admin/…`. Without it those endpoints
    /// refuse every request.
    #[arg(long, env = "GATEWAY_ADMIN_API_KEY", hide_env_values = true, value_parser = parse_secret)]
    pub admin_api_key: Option<SecretString>,

    /// The key (32 bytes, base64) that seals the partner portal's session
    /// cookies. Every replica behind one load balancer needs the same one.
    /// Unset: a random key per process, so sessions end at a restart and
    /// hold on one replica only.
    #[arg(long, env = "GATEWAY_PORTAL_KEY", hide_env_values = true, value_parser = parse_secret)]
    pub portal_key: Option<SecretString>,

    /// How long a portal session lasts after sign-in, in seconds.
    #[arg(long, env = "GATEWAY_PORTAL_SESSION_SECS", default_value_t = 8 * 3600)]
    pub portal_session_secs: u64,

    /// The longest a successful API-key check is kept, in seconds. A kept
    /// check is used only once the registry's changes up to the request's
    /// arrival are applied to it: a revoked key is refused at once.
    #[arg(long, env = "GATEWAY_AUTH_CACHE_TTL_SECS", default_value_t = 30)]
    pub auth_cache_ttl_secs: u64,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "GATEWAY_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,

    /// How long a backend gRPC call may take, in seconds.
    #[arg(long, env = "GATEWAY_BACKEND_TIMEOUT_SECS", default_value_t = 10)]
    pub backend_timeout_secs: u64,

    /// Requests per second each partner may make over the partner routes,
    /// on each gateway replica.
    #[arg(long, env = "GATEWAY_PARTNER_RATE", default_value = "50")]
    pub partner_rate: NonZeroU32,

    /// How many requests above the rate a partner may make at once.
    #[arg(long, env = "GATEWAY_PARTNER_BURST", default_value = "100")]
    pub partner_burst: NonZeroU32,

    /// Test notifications per minute each partner may fire, on each
    /// gateway replica.
    #[arg(long, env = "GATEWAY_ECHO_RATE_PER_MINUTE", default_value = "60")]
    pub echo_rate_per_minute: NonZeroU32,

    /// How many test notifications above the rate a partner may fire at once.
    #[arg(long, env = "GATEWAY_ECHO_BURST", default_value = "10")]
    pub echo_burst: NonZeroU32,

    /// Most requests in progress at once; past it, requests get 503.
    #[arg(long, env = "GATEWAY_MAX_CONCURRENT_REQUESTS", default_value_t = 1024)]
    pub max_concurrent_requests: usize,

    /// Most connections open at once; past it, new ones wait to be accepted.
    #[arg(long, env = "GATEWAY_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Longest a client may take to send a request's headers, in seconds.
    #[arg(long, env = "GATEWAY_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,

    /// Longest a request may take, body included, in seconds; then 408.
    #[arg(long, env = "GATEWAY_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

/// A token or key: long enough not to be guessed.
fn parse_secret(raw: &str) -> Result<SecretString, String> {
    if raw.len() < 16 {
        return Err("must be at least 16 characters".into());
    }
    Ok(SecretString::from(raw.to_owned()))
}

impl Config {
    pub fn auth_cache_ttl(&self) -> Duration {
        Duration::from_secs(self.auth_cache_ttl_secs)
    }

    pub fn backend_timeout(&self) -> Duration {
        Duration::from_secs(self.backend_timeout_secs)
    }

    pub fn rate_limits(&self) -> RateLimits {
        RateLimits::new(
            Rate {
                count: self.partner_rate,
                per: Duration::from_secs(1),
                burst: self.partner_burst,
            },
            Rate {
                count: self.echo_rate_per_minute,
                per: Duration::from_secs(60),
                burst: self.echo_burst,
            },
        )
    }

    pub fn request_guard(&self) -> RequestGuard {
        RequestGuard::new(
            self.max_concurrent_requests.max(1),
            Duration::from_secs(self.request_timeout_secs.max(1)),
        )
    }

    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs.max(1)),
            max_connections: self.max_connections.max(1),
        }
    }

    /// Defaults on a free port, talking to the registry at `registry_url`.
    pub fn for_registry(registry_url: &str) -> Self {
        let mut config = Self::parse_from(["gateway"]);
        config.listen = service_kit::settings::ANY_LOOPBACK_PORT;
        config.registry_url = registry_url.to_owned();
        config
    }
}
