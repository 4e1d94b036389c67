//! The `cleanup` task: the retention cleanup as a real task, so an operator's
//! `POST /api/v1/admin/cleanup` and the schedule both leave a task whose output holds what was
//! removed, readable at `GET /api/v1/tasks/{task_id}`.
//!
//! [`cleanup_task`] is what the route and the schedule commit (with
//! [`SubmitStore`](crate::store::SubmitStore), no event); [`CleanupHandler`] runs
//! [`TaskStore::cleanup`] with the configured [`RetentionPolicy`] when a worker takes it. A
//! running cleanup task is never removed by itself (only finished tasks are).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::error::TaskError;
use crate::handler::{HandlerOutcome, TaskContext, TaskHandler};
use crate::store::{RetentionPolicy, TaskStore};
use crate::task::{NewTask, TaskSpec, TaskType};

/// The task type of the retention cleanup.
pub const CLEANUP: TaskType = TaskType::from_static("cleanup");

/// Attempts of a cleanup task (the store may be briefly unavailable).
const CLEANUP_RETRIES: u32 = 3;

/// Who asked for a cleanup (kept in the task's `input_data.trigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupTrigger {
    /// `POST /api/v1/admin/cleanup`.
    Manual,
    /// The worker's schedule (`CLEANUP_INTERVAL_SECONDS`).
    Schedule,
}

impl CleanupTrigger {
    /// The name stored in `input_data.trigger`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CleanupTrigger::Manual => "manual",
            CleanupTrigger::Schedule => "schedule",
        }
    }
}

/// A new `cleanup` task, due at `now`.
pub fn cleanup_task(trigger: CleanupTrigger, now: DateTime<Utc>) -> NewTask {
    let mut spec = TaskSpec::new(CLEANUP);
    spec.input_data = json!({ "trigger": trigger.as_str() });
    NewTask::new(spec, CLEANUP_RETRIES, now)
}

/// Runs the retention cleanup for a `cleanup` task; its output holds the counts.
#[derive(Clone)]
pub struct CleanupHandler {
    tasks: Arc<dyn TaskStore>,
    policy: RetentionPolicy,
}

impl std::fmt::Debug for CleanupHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CleanupHandler")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl CleanupHandler {
    /// Cleans `tasks` (and their events) with `policy`.
    pub fn new(tasks: Arc<dyn TaskStore>, policy: RetentionPolicy) -> Self {
        Self { tasks, policy }
    }
}

#[async_trait]
impl TaskHandler for CleanupHandler {
    async fn handle(&self, ctx: &TaskContext) -> Result<HandlerOutcome, TaskError> {
        let report = self.tasks.cleanup(&self.policy, ctx.now).await?;
        tracing::info!(
            task_id = %ctx.task.task_id,
            events_deleted = report.events_deleted,
            tasks_deleted = report.tasks_deleted,
            executions_deleted = report.executions_deleted,
            reports_deleted = report.reports_deleted,
            "cleanup finished"
        );
        Ok(HandlerOutcome::done(json!({
            "status": "completed",
            "trigger": ctx.task.input_data.get("trigger"),
            "events_deleted": report.events_deleted,
            "tasks_deleted": report.tasks_deleted,
            "executions_deleted": report.executions_deleted,
            "reports_deleted": report.reports_deleted,
            "retention": {
                "processed_events_seconds": self.policy.processed_events.as_secs(),
                "finished_tasks_seconds": self.policy.finished_tasks.as_secs(),
            },
        })))
    }
}
