//! Prometheus metrics: one recorder per process (the `metrics` facade),
//! rendered as Prometheus text at `/metrics`, next to `/healthz` (the
//! process is up) and `/readyz` (it can do its work). The gateway serves
//! these on its own port; the gRPC services on a small admin HTTP port.
//!
//! Gauges that describe state elsewhere (queue depth, registrations in
//! error state) are refreshed by the service's `refresh` callback when
//! scraped, so they are exact at scrape time and cost nothing otherwise.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets for every `*_seconds` metric: 1 ms to 30 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process's recorder; installed on first use.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder (a test's) may be installed already; then this
            // handle renders only what this recorder sees.
            let _ = metrics::set_global_recorder(recorder);
            metrics::describe_counter!(
                "rpc_server_requests_total",
                "gRPC calls served, by service, method and status code (0 = OK)"
            );
            metrics::describe_histogram!(
                "rpc_server_duration_seconds",
                "gRPC call latency, by service and method"
            );
            handle
        })
        .clone()
}

pub type Check = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;
pub type Refresh = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

#[derive(Clone)]
struct Admin {
    handle: PrometheusHandle,
    ready: Check,
    refresh: Refresh,
}

async fn render(State(admin): State<Admin>) -> String {
    (admin.refresh)().await;
    admin.handle.render()
}

async fn ready(State(admin): State<Admin>) -> (StatusCode, &'static str) {
    if (admin.ready)().await {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// `/metrics`, `/healthz` and `/readyz`.
pub fn admin_router(ready_check: Check, refresh: Refresh) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(Admin {
            handle: handle(),
            ready: ready_check,
            refresh,
        })
}

/// Serves the admin router on `listener` until `shutdown`.
pub async fn serve_admin(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds the admin port early, so that `build` fails fast on a taken port
/// and tests can read the address back.
pub async fn bind_admin(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
