//! Administrative figures and maintenance: `/api/v1/metrics`, `/api/v1/admin/stats`,
//! `/api/v1/admin/cleanup` (commits a `cleanup` task). All figures come from the store, so they
//! agree with the database: they are read through the shared aggregate (`figures.rs`) with no
//! maximum age, so every answer is counted after its request arrived, but concurrent requests
//! share one count instead of paying one each.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use orchestrator_core::cleanup::{CleanupTrigger, cleanup_task};
use orchestrator_core::queue::TaskRef;

use crate::dto::{
    AdminStats, CleanupResponse, ErrorBody, ErrorRates, MetricsSummary, RecentActivity,
};
use crate::error::ApiError;
use crate::state::AppState;

/// `part` as a percentage of `whole`, two decimals, 0 when `whole` is 0.
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (part as f64 * 10_000.0 / whole as f64).round() / 100.0
}

/// System figures as JSON.
#[utoipa::path(
    get,
    path = "/api/v1/metrics",
    operation_id = "metrics_summary",
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, body = MetricsSummary), (status = 401, body = ErrorBody))
)]
pub(crate) async fn metrics(
    State(state): State<AppState>,
) -> Result<Json<MetricsSummary>, ApiError> {
    let snapshot = state.figures().get(&state, Duration::ZERO).await?;
    let stats = snapshot.stats.clone();
    Ok(Json(MetricsSummary {
        webhook_events_total: stats.webhook_events_total,
        workflow_tasks_total: stats.workflow_tasks_total,
        task_executions_total: stats.task_executions_total,
        tasks_by_status: stats.tasks_by_status,
        events_by_type: stats.events_by_type,
        avg_processing_time_ms: stats.avg_processing_time_ms,
    }))
}

/// Activity and error rates of the last 24 hours.
#[utoipa::path(
    get,
    path = "/api/v1/admin/stats",
    operation_id = "admin_stats",
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, body = AdminStats), (status = 401, body = ErrorBody))
)]
pub(crate) async fn stats(State(state): State<AppState>) -> Result<Json<AdminStats>, ApiError> {
    let snapshot = state.figures().get(&state, Duration::ZERO).await?;
    let s = &snapshot.stats;
    Ok(Json(AdminStats {
        recent_activity: RecentActivity {
            webhooks_24h: s.webhooks_24h,
            tasks_24h: s.tasks_24h,
        },
        error_rates: ErrorRates {
            failed_webhooks_24h: s.failed_webhooks_24h,
            failed_tasks_24h: s.failed_tasks_24h,
            webhook_error_rate: percent(s.failed_webhooks_24h, s.webhooks_24h),
            task_error_rate: percent(s.failed_tasks_24h, s.tasks_24h),
        },
    }))
}

/// Triggers the retention cleanup: commits a `cleanup` task, which a worker runs; its output
/// holds what was removed (`GET /api/v1/tasks/{task_id}`).
#[utoipa::path(
    post,
    path = "/api/v1/admin/cleanup",
    operation_id = "cleanup",
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, body = CleanupResponse), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody))
)]
pub(crate) async fn cleanup(
    State(state): State<AppState>,
) -> Result<Json<CleanupResponse>, ApiError> {
    let submit = state.submit().ok_or(ApiError::Unavailable)?;
    let now = state.clock().now();
    let task = cleanup_task(CleanupTrigger::Manual, now);
    let task_ref = TaskRef {
        task_id: task.task_id,
        run_at: task.run_at,
    };
    submit.submit_task(task, now).await?;
    // A lost publish loses nothing: the task is committed and the queue's sweeper finds it.
    if let Err(err) = state.queue().publish(&[task_ref]).await {
        tracing::warn!(task_id = %task_ref.task_id, error = %err, "cleanup task committed but not published yet");
    }
    tracing::info!(task_id = %task_ref.task_id, "cleanup triggered");
    Ok(Json(CleanupResponse {
        status: "cleanup_triggered".to_owned(),
        task_id: task_ref.task_id,
    }))
}

#[cfg(test)]
mod tests {
    use super::percent;

    #[test]
    fn percentages_match_the_spec_example_and_never_divide_by_zero() {
        assert_eq!(percent(3, 80), 3.75);
        assert_eq!(percent(5, 100), 5.0);
        assert_eq!(percent(0, 0), 0.0);
        assert_eq!(percent(1, 3), 33.33);
    }
}
