//! `/healthz`: the process is up. `/readyz`: the registry answers its
//! health check, so requests can be served.

use axum::Json;
use axum::extract::State;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::dto::Health;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

/// Liveness.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "The process is up", body = Health))
)]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Backends reachable", body = Health),
        (status = 503, description = "The registry is not reachable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let answer = state
        .registry_health()
        .check(HealthCheckRequest {
            service: "callbacks.registry.v1.RegistryService".into(),
        })
        .await;
    match answer {
        Ok(response) if response.get_ref().status() == ServingStatus::Serving => {
            Ok(Json(Health { status: "ready" }))
        }
        Ok(_) => Err(ApiError::unavailable("the registry is not serving")),
        Err(status) => {
            tracing::warn!(grpc.status = ?status.code(), "registry health check failed");
            Err(ApiError::unavailable("the registry is not reachable"))
        }
    }
}
