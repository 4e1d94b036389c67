//! The HTTP side: the state every route shares (with the shared rate limiter when Redis is
//! configured), the full API a process of the `all` or `api` role serves, and the probes a
//! `worker` process answers.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orchestrator_axum::{AppState, CachedCheck, HealthCheck};
use orchestrator_redis::RedisRateLimiter;

use crate::components::Components;
use crate::health::GitHubReachable;
use crate::telemetry;

/// The routes' state: the ingest service, the stores, the queue, the API settings, metrics,
/// breakers and health checks (GitHub's reachability, asked at most once a minute, then
/// `extra`). A pause may name the task types of `task_types` (the registered handlers).
pub(crate) fn state(
    components: &Components,
    extra: Vec<Arc<dyn HealthCheck>>,
    task_types: Vec<orchestrator_core::task::TaskType>,
) -> AppState {
    let c = components;
    let github_check =
        GitHubReachable::new(c.config.github.base_url.clone(), Duration::from_secs(5));
    let mut state = AppState::builder(
        c.ingestor.clone(),
        c.stores.events.clone(),
        c.stores.tasks.clone(),
        c.queue.clone(),
        c.clock.clone(),
    )
    .config(c.config.api.clone())
    .cancel_store(c.stores.cancel.clone())
    .submit_store(c.stores.submit.clone())
    .pause_store(c.stores.pauses.clone(), task_types)
    .breakers(c.breakers.clone())
    .operations(c.stores.operations.clone())
    .browse(c.stores.browse.clone())
    .agent_budget(c.agent_budget.clone())
    .health_check(Arc::new(CachedCheck::new(
        github_check,
        Duration::from_secs(60),
        c.clock.clone(),
    )));
    // ENABLE_METRICS=false: no /metrics, and no gauge is updated.
    state = if c.config.enable_metrics {
        state.metrics(c.metrics.clone())
    } else {
        state.without_metrics()
    };
    for check in extra {
        state = state.health_check(check);
    }
    if let Some(reconciler) = &c.reconciler {
        state = state.reconciler(reconciler.clone());
        if let Some(check) = crate::recovery::health_check(c) {
            state = state.health_check(Arc::new(check));
        }
    }
    // With Redis, every API instance counts against one budget per client.
    if let Some(conn) = &c.redis {
        state = state.shared_rate_limiter(Arc::new(RedisRateLimiter::new(conn.clone())));
    }
    state.build()
}

/// The full API, the operator console (`/ui`), the liveness probe, and (when traces are
/// exported) a span per request.
pub(crate) fn full(state: AppState, exporting: bool) -> axum::Router {
    let app =
        orchestrator_axum::router(state.clone()).merge(orchestrator_axum::console::router(state));
    let app = if exporting {
        app.layer(axum::middleware::from_fn(trace_context))
    } else {
        app
    };
    with_liveness(app)
}

/// What a worker process serves: `/health`, `/health/live` and `/metrics` only.
pub(crate) fn probes(state: AppState) -> axum::Router {
    with_liveness(orchestrator_axum::router(state).layer(axum::middleware::from_fn(probes_only)))
}

/// Liveness: the process answers, whatever its dependencies say (readiness is `/health`).
fn with_liveness(app: axum::Router) -> axum::Router {
    app.route("/health/live", axum::routing::get(|| async { "ok" }))
}

/// When traces are exported: runs each request in a span of its own and, when the caller sent
/// no `traceparent`, gives the request that span's one, so the tasks it creates continue
/// this trace (the receiver stores the request's `traceparent` with them).
async fn trace_context(mut req: Request, next: Next) -> Response {
    let span =
        tracing::info_span!("http.request", method = %req.method(), path = %req.uri().path());
    if !req.headers().contains_key("traceparent")
        && let Some(parent) = telemetry::traceparent_of(&span)
        && let Ok(value) = http::HeaderValue::from_str(&parent)
    {
        req.headers_mut().insert("traceparent", value);
    }
    tracing::Instrument::instrument(next.run(req), span).await
}

/// A worker process answers probes and scrapes only.
async fn probes_only(req: Request, next: Next) -> Response {
    match req.uri().path() {
        "/health" | "/health/live" | "/metrics" => next.run(req).await,
        _ => (
            http::StatusCode::NOT_FOUND,
            "worker process: only /health and /metrics",
        )
            .into_response(),
    }
}

/// Tells the operator where the console is (and, without `ADMIN_TOKEN`, that it is locked).
pub(crate) fn log_console(addr: std::net::SocketAddr, api: &orchestrator_axum::ApiConfig) {
    let host = if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    };
    if api.admin_token.is_some() {
        tracing::info!(url = %format!("http://{host}/ui"), "operator console: sign in with ADMIN_TOKEN");
    } else {
        tracing::warn!(
            url = %format!("http://{host}/ui"),
            "operator console and /api/v1 are locked: set ADMIN_TOKEN to use them"
        );
    }
}
