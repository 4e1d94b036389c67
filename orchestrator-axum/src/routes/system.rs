//! Open system routes: `/health` and `/metrics` (Prometheus text), and the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};
use orchestrator_core::observe::Observer;

use crate::auth::{is_authorized, unauthorized};
use crate::dto::{ErrorBody, HealthResponse};
use crate::health;
use crate::state::AppState;

/// Health of the service and its dependencies.
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    tag = "system",
    responses(
        (status = 200, description = "Healthy or degraded", body = HealthResponse),
        (status = 503, description = "Unhealthy (the database is down)", body = HealthResponse),
    )
)]
pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let (status, body) = health::report(&state).await;
    (status, Json(body)).into_response()
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "prometheus_metrics",
    tag = "system",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, description = "Only when metrics are configured to need the token", body = ErrorBody),
    )
)]
pub(crate) async fn prometheus(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.config().metrics_require_token && !is_authorized(&state, &headers) {
        return unauthorized();
    }
    let Some(metrics) = state.metrics() else {
        return String::new().into_response();
    };
    match state.queue().depth(state.clock().now()).await {
        Ok(depth) => metrics.queue_depth(state.queue().backend(), depth),
        Err(err) => tracing::warn!(error = %err, "metrics: queue depth unavailable"),
    }
    metrics.record_breakers(&state.breakers().snapshot());
    metrics.set_buffered_body_bytes(state.body_budget().in_use());
    let mut response = metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// This API's OpenAPI document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi_document",
    tag = "system",
    security(("bearer" = [])),
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object), (status = 401, body = ErrorBody))
)]
pub(crate) async fn openapi(State(state): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    Json(crate::openapi::openapi_for(state.config()))
}
