//! Health, readiness and metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use super::AppState;

#[utoipa::path(get, path = "/healthz", tag = "operations", summary = "Liveness",
    responses((status = 200, description = "The process runs", body = String, content_type = "text/plain")))]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/readyz", tag = "operations", summary = "Readiness: NATS and Redis answer",
    responses((status = 200, description = "NATS and Redis answer: `{nats: true, redis: true}`"),
        (status = 503, description = "NATS or Redis does not answer; the body says which")))]
pub(crate) async fn readyz(State(state): AppState) -> impl IntoResponse {
    let (nats_ok, redis_ok) = state.readiness().await;
    let status = if nats_ok && redis_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({ "nats": nats_ok, "redis": redis_ok })),
    )
}

#[utoipa::path(get, path = "/metrics", tag = "operations", summary = "Prometheus metrics",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
pub(crate) async fn metrics(State(state): AppState) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
