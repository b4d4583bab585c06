//! Wiring: the router (routes, OpenAPI document, fallbacks, body limit,
//! request limits, request ids, panic safety net) and the server. `build` binds before it
//! returns, so tests can read the port back.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;

use anyhow::Context as _;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::{Json, Router, middleware};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

use crate::config::Config;
use crate::limits::{self, RequestGuard};
use crate::portal::session::Sealer;
use crate::problem::ApiError;
use crate::request_id;
use crate::routes;
use crate::server::{self, ConnectionLimits};
use crate::state::AppState;

#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    connections: ConnectionLimits,
}

/// The OpenAPI document, built once.
fn openapi_document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(routes::openapi)
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "health",
    responses((status = 200, description = "This document", content_type = "application/json"))
)]
pub(crate) async fn openapi_json() -> impl IntoResponse {
    Json(openapi_document())
}

/// Prometheus metrics of this gateway.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain"))
)]
pub(crate) async fn metrics_text() -> String {
    service_kit::metrics::handle().render()
}

/// `/docs`: the API reference, rendered once from the OpenAPI document.
async fn reference() -> axum::response::Html<&'static str> {
    static PAGE: OnceLock<String> = OnceLock::new();
    axum::response::Html(PAGE.get_or_init(|| {
        let document = serde_json::to_value(openapi_document()).unwrap_or_default();
        crate::reference::page(&document).into_string()
    }))
}

/// `/docs/postman.json`: the Postman collection generated from the OpenAPI
/// document (`deploy/postman/`), and its environment for the local stack.
async fn postman_collection() -> impl IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        include_str!("../../deploy/postman/partner-callbacks.postman_collection.json"),
    )
}

async fn postman_environment() -> impl IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        include_str!("../../deploy/postman/local.postman_environment.json"),
    )
}

/// The whole HTTP application for `state`: the REST API, the API
/// reference, and the partner portal, which acts through the API.
pub(crate) fn router(
    state: AppState,
    max_body_bytes: usize,
    guard: RequestGuard,
    sealer: Sealer,
) -> Router {
    let (router, _) = routes::api().split_for_parts();
    let api = router
        .route("/docs", axum::routing::get(reference))
        .route("/docs/postman.json", axum::routing::get(postman_collection))
        .route(
            "/docs/postman-environment.json",
            axum::routing::get(postman_environment),
        )
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a request handler panicked");
            ApiError::internal().into_response()
        }))
        .layer(middleware::from_fn_with_state(guard, limits::middleware));
    let portal = crate::portal::router(api.clone(), state, sealer)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a portal handler panicked");
            ApiError::internal().into_response()
        }));
    api.merge(portal)
        .layer(middleware::from_fn(crate::observe::middleware))
        // Outermost, so that every response (fallbacks and panics included)
        // carries X-Request-Id and every problem document names it.
        .layer(middleware::from_fn(request_id::middleware))
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // Count from the first request on, not from the first scrape.
        service_kit::metrics::handle();
        crate::observe::describe();
        let state = AppState::new(&config).context("configuring the backends")?;
        if config.admin_api_key.is_none() {
            tracing::warn!("GATEWAY_ADMIN_API_KEY is not set: the operator endpoints are disabled");
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        Ok(Self {
            listener,
            router: router(
                state,
                config.max_body_bytes,
                config.request_guard(),
                Sealer::new(
                    config.portal_key.as_ref(),
                    std::time::Duration::from_secs(config.portal_session_secs.max(60)),
                )
                .context("GATEWAY_PORTAL_KEY")?,
            ),
            connections: config.connection_limits(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has a local address")
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), "gateway listening");
        server::serve(self.listener, self.router, self.connections, shutdown).await;
        tracing::info!("gateway stopped");
        Ok(())
    }
}
