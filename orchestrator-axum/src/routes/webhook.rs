//! `POST /api/v1/webhooks/github`: the receiver.
//!
//! Rate limit (middleware) -> body read under the size limit -> the core's
//! [`Ingestor`](orchestrator_core::engine::Ingestor) (headers, signature, payload, routing, one
//! store transaction) -> 200 with the accepted object. Nothing is acknowledged before it is
//! stored: a store failure is a 503.

use axum::Json;
use axum::extract::{Request, State};

use crate::body::read_limited;
use crate::config::DuplicatePolicy;
use crate::correlation::traceparent;
use crate::dto::{AcceptedResponse, AcceptedResult, ErrorBody};
use crate::error::ApiError;
use crate::state::AppState;

/// Receives one GitHub delivery.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/github",
    tag = "webhooks",
    params(
        ("X-GitHub-Delivery" = String, Header, description = "Delivery GUID (the same on a redelivery)"),
        ("X-GitHub-Event" = String, Header, description = "Event name"),
        ("X-Hub-Signature-256" = String, Header, description = "sha256=<hex HMAC-SHA256 of the raw body>"),
    ),
    request_body(content = Object, description = "The GitHub webhook payload", content_type = "application/json"),
    responses(
        (status = 200, description = "Stored (or a duplicate, when so configured). A signed JSON object whose typed view fails is stored unparsed: `result.status` is `stored_unparsed`, no task is created, and the event can be reprocessed after an upgrade", body = AcceptedResponse),
        (status = 400, description = "Invalid headers, or a body that is not JSON (a form body without a payload field)", body = ErrorBody),
        (status = 401, description = "Missing or invalid signature", body = ErrorBody),
        (status = 409, description = "Duplicate delivery id", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 413, description = "Payload too large", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "The store could not commit", body = ErrorBody),
    )
)]
pub(crate) async fn receive(
    State(state): State<AppState>,
    req: Request,
) -> Result<Json<AcceptedResponse>, ApiError> {
    let (parts, body) = req.into_parts();
    let limit = state.ingestor().limits().max_body_bytes;
    let timeout = state.config().body_read_timeout;
    let bytes = match read_limited(&parts.headers, body, limit, timeout).await {
        Ok(bytes) => bytes,
        Err(err) => {
            if let Some(metrics) = state.metrics() {
                metrics.webhook_refused(err.reason());
            }
            tracing::warn!(reason = err.reason(), "webhook body refused");
            return Err(err);
        }
    };
    let receipt = state
        .ingestor()
        .ingest(&parts.headers, bytes, traceparent(&parts.headers))
        .await?;
    // The ingestor has logged the outcome (inside this request's span, so with its correlation
    // id); logging it here again would double the receiver's log volume.
    if receipt.duplicate && state.config().duplicate_policy == DuplicatePolicy::Conflict {
        return Err(ApiError::Conflict(format!(
            "delivery {} was already received",
            receipt.delivery_id
        )));
    }
    let result_status = if receipt.duplicate {
        "duplicate"
    } else if receipt.parse_error.is_some() {
        "stored_unparsed"
    } else if receipt.task_ids.is_empty() {
        "stored"
    } else {
        "queued"
    };
    Ok(Json(AcceptedResponse {
        status: if receipt.duplicate {
            "duplicate"
        } else {
            "accepted"
        }
        .to_owned(),
        delivery_id: receipt.delivery_id,
        event_type: receipt.event_type,
        result: AcceptedResult {
            status: result_status.to_owned(),
            task_id: receipt.task_ids.first().copied(),
            task_ids: receipt.task_ids,
            action: receipt.action,
            event_id: receipt.event_id,
            zen: receipt.zen,
        },
    }))
}
