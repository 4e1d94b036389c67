//! Bulk operations: retry tasks / reprocess events by filter (`POST /api/v1/tasks/retry`,
//! `POST /api/v1/webhooks/events/reprocess`), and `/api/v1/operations` to follow or cancel
//! them. The routes only validate, count and store: the work runs in batches in the worker
//! role ([`orchestrator_core::engine::OperationRunner`]), so the receiver never waits for it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use orchestrator_core::store::operation::{
    CancelOperation, Operation, OperationKind, OperationStore, parse_request,
};
use uuid::Uuid;

use crate::dto::{
    DryRunResponse, ErrorBody, OperationDto, OperationListQuery, ReprocessFilterDto, RetryFilterDto,
};
use crate::error::ApiError;
use crate::routes::{bad_query, page};
use crate::state::AppState;

/// How many ids a dry run shows.
const SAMPLE: u32 = 20;

fn store(state: &AppState) -> Result<&dyn OperationStore, ApiError> {
    state.operations().ok_or_else(|| {
        tracing::warn!("bulk operations are not configured (no OperationStore)");
        ApiError::Unavailable
    })
}

fn operation_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(format!("operation {raw} not found")))
}

/// Validates the body, then answers a dry run or stores the operation (202).
async fn start(state: &AppState, kind: OperationKind, body: &[u8]) -> Result<Response, ApiError> {
    let request = parse_request(kind, body).map_err(|e| ApiError::BadRequest(e.0))?;
    let store = store(state)?;
    let now = state.clock().now();
    let sample = if request.dry_run { SAMPLE } else { 0 };
    let preview = store.preview(kind, &request.filter, sample, now).await?;
    if request.dry_run {
        return Ok(Json(DryRunResponse {
            dry_run: true,
            matched: preview.matched,
            task_ids: preview.task_ids,
            event_ids: preview.event_ids,
        })
        .into_response());
    }
    let operation = Operation::new(&request, preview.matched, now);
    store.create_operation(&operation).await?;
    tracing::info!(operation_id = %operation.id, kind = kind.as_str(), matched = operation.matched, "operation stored");
    Ok((StatusCode::ACCEPTED, Json(OperationDto::from(operation))).into_response())
}

/// Retries every failed or cancelled task the filter matches, in the background.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/retry",
    operation_id = "retry_tasks",
    tag = "operations",
    request_body = RetryFilterDto,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Dry run: what would be retried", body = DryRunResponse),
        (status = 202, description = "The operation is stored and runs in the background", body = OperationDto),
        (status = 400, description = "Unknown key, wrong type, inverted time range, or no criterion without \"all\": true; nothing was done", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub(crate) async fn retry(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    start(&state, OperationKind::RetryTasks, &body).await
}

/// Reprocesses every event the filter matches, in the background, by the rules of a single
/// reprocess: an event with open tasks is skipped (and counted); a head SHA that already has an
/// agent run gets no second one unless `force` is set.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/events/reprocess",
    operation_id = "reprocess_events",
    tag = "operations",
    request_body = ReprocessFilterDto,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Dry run: what would be reprocessed", body = DryRunResponse),
        (status = 202, description = "The operation is stored and runs in the background", body = OperationDto),
        (status = 400, description = "Unknown key, wrong type, inverted time range, or no criterion without \"all\": true; nothing was done", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub(crate) async fn reprocess(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    start(&state, OperationKind::ReprocessEvents, &body).await
}

/// Bulk operations, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/operations",
    operation_id = "list_operations",
    tag = "operations",
    params(OperationListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = [OperationDto]),
        (status = 400, description = "Invalid parameters", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    query: Result<Query<OperationListQuery>, QueryRejection>,
) -> Result<Json<Vec<OperationDto>>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let page = page(query.limit, query.offset)?;
    let operations = store(&state)?.list_operations(query.before, page).await?;
    Ok(Json(operations.into_iter().map(Into::into).collect()))
}

/// One bulk operation: status, counts, times.
#[utoipa::path(
    get,
    path = "/api/v1/operations/{operation_id}",
    operation_id = "get_operation",
    tag = "operations",
    params(("operation_id" = Uuid, Path, description = "Operation id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = OperationDto),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<OperationDto>, ApiError> {
    let id = operation_id(&raw)?;
    match store(&state)?.get_operation(id).await? {
        Some(op) => Ok(Json(op.into())),
        None => Err(ApiError::NotFound(format!("operation {id} not found"))),
    }
}

/// Cancels a pending or running operation: rows already handled stay handled; no further
/// batch starts.
#[utoipa::path(
    delete,
    path = "/api/v1/operations/{operation_id}",
    operation_id = "cancel_operation",
    tag = "operations",
    params(("operation_id" = Uuid, Path, description = "Operation id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Cancelled", body = OperationDto),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The operation has already completed or was cancelled", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<OperationDto>, ApiError> {
    let id = operation_id(&raw)?;
    let now = state.clock().now();
    match store(&state)?.cancel_operation(id, now).await? {
        CancelOperation::Cancelled(op) => {
            tracing::info!(operation_id = %id, done = op.done, "operation cancelled");
            Ok(Json((*op).into()))
        }
        CancelOperation::Finished(op) => Err(ApiError::Conflict(format!(
            "operation {id} is already {}",
            op.status.as_str()
        ))),
        CancelOperation::NotFound => Err(ApiError::NotFound(format!("operation {id} not found"))),
    }
}
