//! What every handler shares: the gRPC clients (one HTTP/2 connection each,
//! multiplexed), the authentication cache, the admin key and the
//! per-partner rates.

use std::sync::Arc;
use std::time::Duration;

use callbacks_proto::dispatcher::v1::dispatcher_service_client::DispatcherServiceClient;
use callbacks_proto::registry::v1::registry_service_client::RegistryServiceClient;
use secrecy::{ExposeSecret as _, SecretString};
use service_kit::telemetry::{Outbound, OutboundChannel};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_client::HealthClient;

use crate::auth::KeyCache;
use crate::config::Config;
use crate::limits::RateLimits;
use crate::problem::ApiError;
use crate::request_id;

#[derive(Debug, Clone)]
pub(crate) struct AppState {
    registry: RegistryServiceClient<OutboundChannel>,
    registry_health: HealthClient<Channel>,
    dispatcher: Option<DispatcherServiceClient<OutboundChannel>>,
    pub auth_cache: Arc<KeyCache>,
    pub admin_api_key: Option<SecretString>,
    pub limits: Arc<RateLimits>,
}

/// A lazily connected channel: the gateway starts (and answers `/healthz`)
/// while its backends are still coming up; `/readyz` tells when they are.
fn channel(url: &str, timeout: Duration) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .tcp_nodelay(true)
        .connect_lazy())
}

impl AppState {
    pub(crate) fn new(config: &Config) -> anyhow::Result<Self> {
        let registry = channel(&config.registry_url, config.backend_timeout())?;
        let dispatcher = config
            .dispatcher_url
            .as_deref()
            .map(|url| channel(url, config.backend_timeout()))
            .transpose()?;
        let token = |t: &Option<SecretString>| Outbound::new(t.as_ref().map(|t| t.expose_secret()));
        let registry_client = RegistryServiceClient::with_interceptor(
            registry.clone(),
            token(&config.registry_token)?,
        );
        let dispatcher_outbound = token(&config.dispatcher_token)?;
        Ok(Self {
            auth_cache: Arc::new(KeyCache::new(
                config.auth_cache_ttl(),
                registry_client.clone(),
            )),
            registry: registry_client,
            registry_health: HealthClient::new(registry),
            dispatcher: dispatcher
                .map(|d| DispatcherServiceClient::with_interceptor(d, dispatcher_outbound)),
            admin_api_key: config.admin_api_key.clone(),
            limits: Arc::new(config.rate_limits()),
        })
    }

    pub(crate) fn registry(&self) -> RegistryServiceClient<OutboundChannel> {
        self.registry.clone()
    }

    pub(crate) fn registry_health(&self) -> HealthClient<Channel> {
        self.registry_health.clone()
    }

    /// The dispatcher client, or 503 while none is configured.
    pub(crate) fn dispatcher(&self) -> Result<DispatcherServiceClient<OutboundChannel>, ApiError> {
        self.dispatcher.clone().ok_or_else(|| {
            ApiError::unavailable(
                "test notifications are not available yet: this gateway has no dispatcher configured",
            )
        })
    }
}

/// A gRPC request carrying the current `X-Request-Id`, so that backend logs
/// can be matched with the partner's request.
pub(crate) fn grpc_request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = request_id::current().to_string().parse() {
        request.metadata_mut().insert(request_id::HEADER, value);
    }
    request
}
