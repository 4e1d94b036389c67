//! `POST /api/v1/tasks/{task_id}/cancel`: an operator cancels one task.
//!
//! A pending or retrying task never starts; a running one is stopped cooperatively by its
//! worker (see [`orchestrator_core::store::cancel`]). The answer is the task as stored after the
//! cancel, with its executions.

use axum::Json;
use axum::extract::{Path, State};
use orchestrator_core::store::cancel::{CancelOutcome, CancelReason, MANUAL_CANCEL_MESSAGE};
use orchestrator_core::task::TaskDetail;
use uuid::Uuid;

use crate::dto::{ErrorBody, TaskDetailDto};
use crate::error::ApiError;
use crate::state::AppState;

/// Cancels a pending, retrying or running task.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{task_id}/cancel",
    operation_id = "cancel_task",
    tag = "tasks",
    params(("task_id" = Uuid, Path, description = "Task id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The task, now cancelled", body = TaskDetailDto),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The task is already completed, failed or cancelled", body = ErrorBody),
        (status = 503, description = "Cancelling is not configured, or the store is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<TaskDetailDto>, ApiError> {
    let id =
        Uuid::parse_str(&raw).map_err(|_| ApiError::NotFound(format!("task {raw} not found")))?;
    let Some(store) = state.cancel_store() else {
        tracing::warn!(task_id = %id, "cancel asked, but no cancel store is configured");
        return Err(ApiError::Unavailable);
    };
    let now = state.clock().now();
    match store.cancel_task(id, MANUAL_CANCEL_MESSAGE, now).await? {
        CancelOutcome::Cancelled(task) => {
            tracing::info!(task_id = %id, task_type = %task.task_type, "task cancelled by an operator");
            if let Some(metrics) = state.metrics() {
                orchestrator_core::observe::Observer::tasks_cancelled(
                    metrics,
                    CancelReason::Manual.as_str(),
                    1,
                );
            }
            // The executions show the attempt that was stopped; the task itself is the answer
            // if the detail cannot be read back.
            let detail = match state.tasks().get_task(id).await {
                Ok(Some(detail)) => detail,
                _ => TaskDetail {
                    task: *task,
                    executions: Vec::new(),
                },
            };
            Ok(Json(detail.into()))
        }
        CancelOutcome::NotFound => Err(ApiError::NotFound(format!("task {id} not found"))),
        CancelOutcome::Terminal(status) => Err(ApiError::Conflict(format!(
            "task {id} is already {status}; only pending, retrying or running tasks can be cancelled"
        ))),
    }
}
