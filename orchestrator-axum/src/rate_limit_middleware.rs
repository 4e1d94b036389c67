//! The rate-limit middleware of the routes: the client's address, then its route's
//! [`RouteLimit`] (from the state), then 429 with `Retry-After` or the request.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::rate_limit::{RouteLimit, client_ip};
use crate::state::AppState;

async fn enforce(
    limiter: Option<&RouteLimit>,
    state: &AppState,
    req: Request,
    next: Next,
    webhook: bool,
) -> Response {
    if let Some(limiter) = limiter {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let client = client_ip(
            req.headers(),
            peer,
            state.config().trusted_proxy_header.as_ref(),
        );
        if let Err(retry_after) = limiter.check(client).await {
            tracing::warn!(%client, "rate limited");
            if webhook && let Some(metrics) = state.metrics() {
                metrics.webhook_refused("rate_limited");
            }
            return ApiError::RateLimited { retry_after }.into_response();
        }
    }
    next.run(req).await
}

/// Middleware: the webhook receiver's limit.
pub(crate) async fn webhook_limit(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    enforce(state.webhook_limiter(), &state, req, next, true).await
}

/// Middleware: the API's limit.
pub(crate) async fn api_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    enforce(state.api_limiter(), &state, req, next, false).await
}
