//! [`TaskStore`]: what the API reads about tasks and what operators do to them (list, detail,
//! manual retry, statistics, retention, ping).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Page, TaskFilter};
use crate::error::StoreError;
use crate::task::{Task, TaskDetail, TaskStatus};

/// What [`TaskStore::retry_task`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryOutcome {
    /// The task is pending again (due now); its retry budget is reset.
    Scheduled(Box<Task>),
    /// No task has that id.
    NotFound,
    /// The task is in a status that cannot be retried (only failed and cancelled can).
    NotRetryable(TaskStatus),
}

/// The figures behind `/api/v1/metrics` and `/api/v1/admin/stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// All stored events.
    pub webhook_events_total: u64,
    /// All stored tasks.
    pub workflow_tasks_total: u64,
    /// All stored executions.
    pub task_executions_total: u64,
    /// Task count per status name (every status present, zero included).
    pub tasks_by_status: BTreeMap<String, u64>,
    /// Event count per event type.
    pub events_by_type: BTreeMap<String, u64>,
    /// Mean duration of finished executions, in milliseconds (`None` when there are none).
    pub avg_processing_time_ms: Option<f64>,
    /// Events received in the 24 hours before `now`.
    pub webhooks_24h: u64,
    /// Tasks created in the 24 hours before `now`.
    pub tasks_24h: u64,
    /// Events of the last 24 hours with an error.
    pub failed_webhooks_24h: u64,
    /// Tasks of the last 24 hours that failed.
    pub failed_tasks_24h: u64,
}

/// How long finished data is kept. Unprocessed events and tasks that can still run are never
/// removed, whatever their age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Processed events older than this are removed (with their finished tasks).
    pub processed_events: Duration,
    /// Completed / failed / cancelled tasks (and their executions) older than this are removed.
    pub finished_tasks: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        let week = Duration::from_secs(7 * 24 * 3600);
        Self {
            processed_events: week,
            finished_tasks: week,
        }
    }
}

/// What a cleanup removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupReport {
    /// Events removed.
    pub events_deleted: u64,
    /// Tasks removed.
    pub tasks_deleted: u64,
    /// Executions removed.
    pub executions_deleted: u64,
    /// Reporting records (`github_reports`, [`report`](super::report)) removed: those older
    /// than the finished-task retention whose task is gone (a pull request's comment record
    /// once its last reported task is gone).
    #[serde(default)]
    pub reports_deleted: u64,
}

/// What the API reads about tasks and what operators do to them. The state changes that queues
/// and workers drive are [`AttemptStore`](super::AttemptStore)'s.
#[async_trait]
pub trait TaskStore: Send + Sync + 'static {
    /// Tasks, newest first.
    async fn list_tasks(&self, filter: &TaskFilter, page: Page) -> Result<Vec<Task>, StoreError>;

    /// One task with its executions.
    async fn get_task(&self, task_id: Uuid) -> Result<Option<TaskDetail>, StoreError>;

    /// An operator's retry: a failed or cancelled task becomes pending, due at `now`, with its
    /// retry count reset; its event becomes unprocessed again. Its unresolved agent-run intents
    /// are released in the same transaction (see [`agent_run`](super::agent_run)), so the retried task creates
    /// exactly one new run.
    async fn retry_task(
        &self,
        task_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<RetryOutcome, StoreError>;

    /// The figures of the metrics and stats endpoints.
    async fn stats(&self, now: DateTime<Utc>) -> Result<Stats, StoreError>;

    /// Removes finished data older than the policy allows, and the reporting records of the
    /// tasks it removed (or that are gone) once they are as old.
    async fn cleanup(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
    ) -> Result<CleanupReport, StoreError>;

    /// A round trip to the store, for health checks.
    async fn ping(&self) -> Result<(), StoreError>;
}
