//! # orchestrator-axum
//!
//! The whole HTTP surface of the webhook orchestrator spec, usable two ways:
//!
//! - [`router`]: a complete [`axum::Router`] with every endpoint (the reference server mounts it);
//! - [`WebhookLayer`] / [`webhook_service`]: just the GitHub receiver, for an existing axum or
//!   tower application.
//!
//! | Route | Auth | Rate limit |
//! |---|---|---|
//! | `POST /api/v1/webhooks/github` | signature | webhook (10/s, burst 20) |
//! | `GET /api/v1/webhooks/events`, `GET .../events/{event_id}`, `POST .../{event_id}/reprocess` | bearer | API (100/min, burst 50) |
//! | `GET /api/v1/tasks`, `GET /api/v1/tasks/{task_id}`, `POST .../{task_id}/retry` | bearer | API |
//! | `GET /api/v1/metrics`, `GET /api/v1/admin/stats`, `POST /api/v1/admin/cleanup` | bearer | API |
//! | `POST /api/v1/admin/pause`, `POST /api/v1/admin/resume`, `GET /api/v1/admin/pauses` | bearer | API |
//! | `GET /api/v1/openapi.json` | bearer | API |
//! | `GET /health`, `GET /metrics` | none (metrics: optional bearer) | none |
//! | `/ui/*` (feature `console`, `console::router`) | session cookie from the admin token | sign-in: API |
//!
//! Every error answer is `{"error", "status_code", "path", "correlation_id"}`; the correlation id
//! comes from `X-Request-Id` or `traceparent` (or is generated), is returned as `X-Request-Id` and
//! is a field of the request's tracing span, so every log line of the request carries it.
//!
//! ## Layout
//! - `config.rs`: admin token, duplicate policy, rate limits, metrics access, retention.
//! - `state.rs`: [`AppState`], what every handler shares.
//! - `error.rs`: [`ApiError`], the only place where failures become status codes.
//! - `correlation.rs`: correlation ids, request spans, error bodies ([`CorrelationLayer`]).
//! - `auth.rs` (bearer token), `rate_limit.rs` (GCRA per client) and
//!   `rate_limit_middleware.rs` (the routes' middleware over it), `body.rs` (size limit while
//!   reading), `budget.rs` (the process-wide budget of buffered body bytes).
//! - [`serve()`]: serving the router on a TCP listener with header and keep-alive timeouts, a
//!   connection cap and graceful shutdown (HTTP/1 and HTTP/2).
//! - `routes/`: `webhook.rs`, `events.rs`, `tasks.rs`, `admin.rs`, `system.rs` (`/health`,
//!   `/metrics`).
//! - [`dto`]: the spec's JSON shapes; [`openapi`]: the OpenAPI document of them, and its route.
//! - `figures.rs`: the single-flight aggregate (store figures, queue depth, last recovery run)
//!   shared by `/api/v1/metrics`, `/api/v1/admin/stats` and the console's overview.
//! - `metrics.rs`: the spec's Prometheus metrics as a core `Observer`; `health.rs`: what `/health`
//!   checks.
//! - `layer.rs`: the receiver alone, as a layer or a service.
//! - `console` (cargo feature `console`): the operator console at `/ui`, mounted with
//!   `console::router(state)`.

mod auth;
mod body;
mod budget;
mod config;
#[cfg(feature = "console")]
pub mod console;
mod correlation;
pub mod dto;
mod error;
mod figures;
mod health;
mod layer;
mod metrics;
pub mod openapi;
mod rate_limit;
mod rate_limit_middleware;
mod routes;
mod serve;
mod state;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

pub use budget::BodyBudget;
pub use config::{
    AdminToken, ApiConfig, DEFAULT_MAX_BUFFERED_BODY_BYTES, DuplicatePolicy, RateLimit, RateLimits,
    WEBHOOK_PATH,
};
pub use correlation::{CorrelationId, CorrelationLayer, CorrelationService, REQUEST_ID};
pub use error::ApiError;
pub use health::{CachedCheck, HealthCheck, HealthStatus};
pub use layer::{WebhookLayer, WebhookService, webhook_service};
pub use metrics::{ConnectionGauge, Metrics};
pub use serve::{ServeConfig, serve};
pub use state::{AppState, AppStateBuilder};

/// Every endpoint of the spec, with authentication, rate limits and correlation ids.
pub fn router(state: AppState) -> Router {
    let webhook = Router::new()
        .route(&state.config().webhook_path, post(routes::webhook::receive))
        .route_layer(from_fn_with_state(
            state.clone(),
            rate_limit_middleware::webhook_limit,
        ));

    // Layers added later run first: rate limit, then the token check.
    let api = Router::new()
        .route("/api/v1/webhooks/events", get(routes::events::list))
        .route(
            "/api/v1/webhooks/events/{event_id}",
            get(routes::events::get),
        )
        .route(
            "/api/v1/webhooks/events/{event_id}/reprocess",
            post(routes::events::reprocess),
        )
        .route(
            "/api/v1/webhooks/events/reprocess",
            post(routes::operations::reprocess),
        )
        .route("/api/v1/tasks/retry", post(routes::operations::retry))
        .route("/api/v1/operations", get(routes::operations::list))
        .route(
            "/api/v1/operations/{operation_id}",
            get(routes::operations::get).delete(routes::operations::cancel),
        )
        .route("/api/v1/tasks", get(routes::tasks::list))
        .route("/api/v1/tasks/{task_id}", get(routes::tasks::get))
        .route("/api/v1/tasks/{task_id}/retry", post(routes::tasks::retry))
        .route(
            "/api/v1/tasks/{task_id}/cancel",
            post(routes::cancel::cancel),
        )
        .route("/api/v1/metrics", get(routes::admin::metrics))
        .route("/api/v1/admin/stats", get(routes::admin::stats))
        .route("/api/v1/admin/cleanup", post(routes::admin::cleanup))
        .route("/api/v1/admin/pause", post(routes::pause::pause))
        .route("/api/v1/admin/resume", post(routes::pause::resume))
        .route("/api/v1/admin/pauses", get(routes::pause::list))
        .route(
            "/api/v1/admin/recover",
            post(routes::recovery::start).get(routes::recovery::list),
        )
        .route("/api/v1/admin/recover/{run_id}", get(routes::recovery::get))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route_layer(from_fn_with_state(state.clone(), auth::require_token))
        .route_layer(from_fn_with_state(
            state.clone(),
            rate_limit_middleware::api_limit,
        ));

    let system = Router::new()
        .route("/health", get(routes::system::health))
        .route("/metrics", get(routes::system::prometheus));

    Router::new()
        .merge(webhook)
        .merge(api)
        .merge(system)
        .fallback(routes::not_found)
        .with_state(state)
        .layer(error::catch_panic())
        .layer(CorrelationLayer)
}
