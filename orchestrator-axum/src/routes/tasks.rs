//! `/api/v1/tasks`: list, detail and operator retry of workflow tasks.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use orchestrator_core::queue::TaskRef;
use orchestrator_core::store::{RetryOutcome, TaskFilter};
use orchestrator_core::task::{TaskStatus, TaskType};
use uuid::Uuid;

use crate::dto::{ErrorBody, RetryResponse, TaskDetailDto, TaskListQuery, TaskSummaryDto};
use crate::error::ApiError;
use crate::routes::{bad_query, page};
use crate::state::AppState;

fn task_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(format!("task {raw} not found")))
}

/// Lists tasks, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/tasks",
    operation_id = "list_tasks",
    tag = "tasks",
    params(TaskListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = [TaskSummaryDto]),
        (status = 400, description = "Invalid parameters", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    query: Result<Query<TaskListQuery>, QueryRejection>,
) -> Result<Json<Vec<TaskSummaryDto>>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let page = page(query.limit, query.offset)?;
    let status = query
        .status
        .map(|s| s.parse::<TaskStatus>())
        .transpose()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let task_type = query
        .task_type
        .map(TaskType::new)
        .transpose()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let filter = TaskFilter {
        status,
        task_type,
        repository: query.repository,
        superseded_by: query
            .superseded_by
            .map(|raw| {
                Uuid::parse_str(&raw).map_err(|_| {
                    ApiError::BadRequest(format!("superseded_by must be a task id, got {raw:?}"))
                })
            })
            .transpose()?,
        superseded: query.superseded,
    };
    let tasks = state.tasks().list_tasks(&filter, page).await?;
    let pauses = crate::routes::pause::current(&state).await?;
    Ok(Json(
        tasks
            .into_iter()
            .map(|t| {
                let paused = crate::routes::pause::covers(&pauses, &t);
                TaskSummaryDto { paused, ..t.into() }
            })
            .collect(),
    ))
}

/// One task with its executions.
#[utoipa::path(
    get,
    path = "/api/v1/tasks/{task_id}",
    operation_id = "get_task",
    tag = "tasks",
    params(("task_id" = Uuid, Path, description = "Task id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = TaskDetailDto),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<TaskDetailDto>, ApiError> {
    let id = task_id(&raw)?;
    match state.tasks().get_task(id).await? {
        Some(detail) => {
            let pauses = crate::routes::pause::current(&state).await?;
            let paused = crate::routes::pause::covers(&pauses, &detail.task);
            Ok(Json(TaskDetailDto {
                paused,
                ..detail.into()
            }))
        }
        None => Err(ApiError::NotFound(format!("task {id} not found"))),
    }
}

/// Runs a failed or cancelled task again.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{task_id}/retry",
    operation_id = "retry_task",
    tag = "tasks",
    params(("task_id" = Uuid, Path, description = "Task id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = RetryResponse),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The task is not in a retryable state", body = ErrorBody),
    )
)]
pub(crate) async fn retry(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<RetryResponse>, ApiError> {
    let id = task_id(&raw)?;
    let now = state.clock().now();
    match state.tasks().retry_task(id, now).await? {
        RetryOutcome::Scheduled(task) => {
            // The task is committed as pending; a failed publish only delays it until the
            // queue's sweeper finds it, so it is logged, not answered as an error.
            let task_ref = TaskRef {
                task_id: task.task_id,
                run_at: task.run_at,
            };
            if let Err(err) = state.queue().publish(&[task_ref]).await {
                tracing::warn!(error = %err, task_id = %id, "retried task not published; the sweeper will");
            }
            tracing::info!(task_id = %id, "task retry scheduled");
            Ok(Json(RetryResponse {
                status: "retrying".to_owned(),
                celery_task_id: task.task_id,
                task_id: task.task_id,
            }))
        }
        RetryOutcome::NotFound => Err(ApiError::NotFound(format!("task {id} not found"))),
        RetryOutcome::NotRetryable(status) => Err(ApiError::Conflict(format!(
            "task {id} is {status}; only failed or cancelled tasks can be retried"
        ))),
    }
}
