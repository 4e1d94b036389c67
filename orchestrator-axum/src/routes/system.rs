//! Open system routes: `/health` (its report: the checks of `health.rs` run against the state)
//! and `/metrics` (Prometheus text).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::future::join_all;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use orchestrator_core::breaker::BreakerState;
use orchestrator_core::observe::Observer;

use crate::auth::{is_authorized, unauthorized};
use crate::dto::{AgentBudgetHealth, ErrorBody, HealthResponse};
use crate::error::ApiError;
use crate::health::{HealthStatus, Verdict, store_reason, timed};
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
    let (status, body) = report(&state).await;
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
        (status = 404, description = "Metrics are turned off (`ENABLE_METRICS=false`)", body = ErrorBody),
    )
)]
pub(crate) async fn prometheus(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.config().metrics_require_token && !is_authorized(&state, &headers) {
        return unauthorized();
    }
    let Some(metrics) = state.metrics() else {
        return ApiError::NotFound("metrics are turned off".into()).into_response();
    };
    match state.queue().depth(state.clock().now()).await {
        Ok(depth) => metrics.queue_depth(state.queue().backend(), depth),
        Err(err) => tracing::warn!(error = %err, "metrics: queue depth unavailable"),
    }
    metrics.record_breakers(&state.breakers().snapshot());
    metrics.set_buffered_body_bytes(state.body_budget().in_use());
    if let Err(why) = agent_budget(&state, state.clock().now()).await {
        tracing::warn!(why, "metrics: the agent budget's gauges were not refreshed");
    }
    let mut response = metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Runs every check at once: the database's, the queue's and the added ones, by name.
async fn run_checks(state: &AppState, now: DateTime<Utc>) -> Vec<(String, Verdict)> {
    let database = timed("database", async {
        match state.tasks().ping().await {
            Ok(()) => (HealthStatus::Healthy, None),
            Err(err) => {
                tracing::error!(error = %err, "health: database ping failed");
                (
                    HealthStatus::Unhealthy,
                    Some(store_reason("database", &err)),
                )
            }
        }
    });
    let queue_name = format!("task queue ({})", state.queue().backend());
    let queue = timed(&queue_name, async {
        match state.queue().depth(now).await {
            Ok(depth) => {
                if let Some(metrics) = state.metrics() {
                    metrics.queue_depth(state.queue().backend(), depth);
                }
                (HealthStatus::Healthy, None)
            }
            Err(err) => {
                tracing::warn!(error = %err, "health: queue depth failed");
                (
                    HealthStatus::Unhealthy,
                    Some(store_reason(&queue_name, &err)),
                )
            }
        }
    });
    let extras = join_all(state.health_checks().iter().map(|c| async move {
        let verdict = timed(c.name(), async {
            match c.check().await {
                HealthStatus::Healthy => (HealthStatus::Healthy, None),
                other => {
                    let why = format!("{} {} (see the log)", c.name(), other.as_str());
                    (other, Some(why))
                }
            }
        })
        .await;
        (c.name().to_owned(), verdict)
    }));
    let (database, queue, extras) = futures::join!(database, queue, extras);
    [
        ("database".to_owned(), database),
        ("celery".to_owned(), queue),
    ]
    .into_iter()
    .chain(extras)
    .collect()
}

/// The agent budget's state at `now` (also set on the metrics' gauges), `None` when the state
/// shows no budget; `Err` says why it could not be read (run creations wait meanwhile).
pub(crate) async fn agent_budget(
    state: &AppState,
    now: DateTime<Utc>,
) -> Result<Option<AgentBudgetHealth>, String> {
    let Some(budget) = state.agent_budget() else {
        return Ok(None);
    };
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), budget.state(now)).await;
    match read {
        Ok(Ok(budget)) => {
            if let Some(metrics) = state.metrics() {
                metrics.record_agent_budget(&budget, now);
            }
            Ok(Some(budget.into()))
        }
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "health: the agent budget could not be read");
            Err(format!(
                "{}; Codegen run creations wait until it can be read",
                store_reason("agent budget", &err)
            ))
        }
        Err(_) => Err("the agent budget did not answer within 5 s; Codegen run creations wait until it can be read".to_owned()),
    }
}

/// Runs every check and says what `/health` answers.
async fn report(state: &AppState) -> (StatusCode, HealthResponse) {
    let now = state.clock().now();
    let verdicts = run_checks(state, now).await;

    let mut checks = BTreeMap::new();
    let mut reasons = BTreeMap::new();
    // Only the database decides between up and down; anything else not healthy is degraded.
    let mut overall = HealthStatus::Healthy;
    for (name, (status, why)) in verdicts {
        if name == "database" && status == HealthStatus::Unhealthy {
            overall = HealthStatus::Unhealthy;
        } else if status != HealthStatus::Healthy {
            overall = overall.max(HealthStatus::Degraded);
        }
        if let Some(why) = why {
            reasons.insert(name.clone(), why);
        }
        checks.insert(name, status.as_str().to_owned());
    }
    let mut breakers = BTreeMap::new();
    let snapshot = state.breakers().snapshot();
    if let Some(metrics) = state.metrics() {
        metrics.record_breakers(&snapshot);
    }
    for b in snapshot {
        if b.state != BreakerState::Closed {
            overall = overall.max(HealthStatus::Degraded);
            reasons.insert(
                format!("breaker:{}", b.name),
                format!(
                    "{} circuit breaker {}: calls to it wait (tasks are deferred, no attempt used)",
                    b.name,
                    b.state.as_str()
                ),
            );
        }
        breakers.insert(b.name, b.state.as_str().to_owned());
    }
    let agent_budget = match agent_budget(state, now).await {
        Ok(budget) => budget,
        Err(why) => {
            overall = overall.max(HealthStatus::Degraded);
            reasons.insert("agent_budget".to_owned(), why);
            None
        }
    };
    let uptime = (now - state.started_at()).num_milliseconds().max(0) as f64 / 1000.0;
    let status = if overall == HealthStatus::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = HealthResponse {
        status: overall.as_str().to_owned(),
        timestamp: now,
        checks,
        reasons,
        breakers,
        queue_backend: state.queue().backend().to_owned(),
        uptime,
        agent_budget,
    };
    (status, body)
}
