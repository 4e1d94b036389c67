//! The JSON shapes of the spec, as sent on the wire (and described in the OpenAPI document).
//!
//! Core types stay free of HTTP concerns; these structs map them onto the spec's field names.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use orchestrator_core::event::{EventSummary, WebhookEvent};
use orchestrator_core::task::{Task, TaskDetail, TaskExecution};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

mod operation;
pub use operation::{
    DryRunResponse, OperationDto, OperationListQuery, ReprocessFilterDto, RetryFilterDto,
};

/// Every error answer: `{"error", "status_code", "path", "correlation_id"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a human.
    pub error: String,
    /// The HTTP status, repeated.
    pub status_code: u16,
    /// The request path.
    pub path: String,
    /// The request's correlation id (also in the `X-Request-Id` header and the logs).
    pub correlation_id: String,
}

/// The answer to an accepted (or, by configuration, duplicate) delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AcceptedResponse {
    /// `accepted`, or `duplicate` when the delivery id was already stored.
    pub status: String,
    /// `X-GitHub-Delivery`.
    pub delivery_id: String,
    /// `X-GitHub-Event`.
    pub event_type: String,
    /// What was done with it.
    pub result: AcceptedResult,
}

/// The `result` of [`AcceptedResponse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AcceptedResult {
    /// `queued` (tasks created), `stored` (no task needed), `stored_unparsed` (a genuine
    /// delivery whose typed view failed: stored with its parse error, no tasks, reprocessable
    /// after an upgrade) or `duplicate`.
    pub status: String,
    /// The first task created, if any.
    pub task_id: Option<Uuid>,
    /// Every task created.
    pub task_ids: Vec<Uuid>,
    /// The payload's action.
    pub action: Option<String>,
    /// The stored event's id.
    pub event_id: i64,
    /// The `zen` of a ping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zen: Option<String>,
}

/// One row of `GET /api/v1/webhooks/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventSummaryDto {
    /// Event id.
    pub id: i64,
    /// `X-GitHub-Delivery`.
    pub delivery_id: String,
    /// `X-GitHub-Event`.
    pub event_type: String,
    /// The payload's action.
    pub action: Option<String>,
    /// Whether every task it caused has finished.
    pub processed: bool,
    /// When it was received.
    pub created_at: DateTime<Utc>,
    /// The error of a task of it that failed for good.
    pub error_message: Option<String>,
}

impl From<EventSummary> for EventSummaryDto {
    fn from(e: EventSummary) -> Self {
        Self {
            id: e.id,
            delivery_id: e.delivery_id,
            event_type: e.event_type,
            action: e.action,
            processed: e.processed,
            created_at: e.created_at,
            error_message: e.error_message,
        }
    }
}

/// `GET /api/v1/webhooks/events/{event_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventDetailDto {
    /// Event id.
    pub id: i64,
    /// `X-GitHub-Delivery`.
    pub delivery_id: String,
    /// `X-GitHub-Event`.
    pub event_type: String,
    /// The payload's action.
    pub action: Option<String>,
    /// `github` (our receiver got it) or `recovered` (read from GitHub's delivery log).
    pub source: String,
    /// The webhook it came from (`X-GitHub-Hook-ID` of the stored headers), when known.
    pub hook_id: Option<i64>,
    /// `owner/name`.
    pub repository: Option<String>,
    /// The payload as received: the stored JSON text, not re-serialized, so its bytes (key
    /// order, spacing, escapes) are the ones GitHub signed.
    #[schema(value_type = Object)]
    pub payload: RawJson,
    /// The stored request headers.
    pub headers: BTreeMap<String, String>,
    /// Whether every task it caused has finished.
    pub processed: bool,
    /// When its first task started.
    pub processing_started_at: Option<DateTime<Utc>>,
    /// When its last task finished.
    pub processing_completed_at: Option<DateTime<Utc>>,
    /// The error of a task of it that failed for good (or why it was stored unparsed).
    pub error_message: Option<String>,
    /// Why its payload's typed view failed when it was received: it was stored unparsed, with no
    /// tasks (`null` once a reprocess parsed it, and for every delivery that parsed).
    pub parse_error: Option<String>,
    /// How often it was reprocessed.
    pub retry_count: u32,
    /// When it was received.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A JSON value kept as its text: serialized verbatim, compared by text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(pub Box<RawValue>);

impl RawJson {
    /// `bytes` as a JSON value; `null` when they are not one (stored payloads always are: the
    /// receiver parsed them before storing).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let text = std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| RawValue::from_string(text.to_owned()).ok());
        Self(text.unwrap_or_else(|| RawValue::NULL.to_owned()))
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl From<WebhookEvent> for EventDetailDto {
    fn from(e: WebhookEvent) -> Self {
        let payload = RawJson::from_bytes(&e.payload);
        let hook_id = e
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("x-github-hook-id"))
            .and_then(|(_, value)| value.trim().parse().ok())
            .filter(|id: &i64| *id > 0);
        Self {
            id: e.id,
            delivery_id: e.delivery_id,
            event_type: e.event_type,
            action: e.action,
            source: e.source,
            hook_id,
            repository: e.repository,
            payload,
            headers: e.headers.into_iter().collect(),
            processed: e.processed,
            processing_started_at: e.processing_started_at,
            processing_completed_at: e.processing_completed_at,
            error_message: e.error_message,
            parse_error: e.parse_error,
            retry_count: e.retry_count,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// One row of `GET /api/v1/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskSummaryDto {
    /// Row id.
    pub id: i64,
    /// Public id.
    pub task_id: Uuid,
    /// Task type.
    pub task_type: String,
    /// `pending`, `running`, `retrying`, `completed`, `failed` or `cancelled`.
    #[schema(value_type = TaskStatusName)]
    pub status: String,
    /// `owner/name`.
    pub repository: Option<String>,
    /// Pull request number.
    pub pr_number: Option<i64>,
    /// Insert time.
    pub created_at: DateTime<Utc>,
    /// When it finished.
    pub completed_at: Option<DateTime<Utc>>,
    /// The last error.
    pub error_message: Option<String>,
    /// The coding agent's page for its run.
    pub codegen_task_url: Option<String>,
    /// A pause covers it (`POST /api/v1/admin/pause`): it waits, its status unchanged.
    #[serde(default)]
    pub paused: bool,
    /// The newer task (same repository, pull request and task type, newer head SHA) that
    /// superseded this one, if any.
    pub superseded_by: Option<Uuid>,
    /// When a waiting task (`pending` or `retrying`) may next start: its retry's backoff, an
    /// agent-budget deferral or a lease given back; `null` once it runs or has ended. A paused
    /// task waits past it until its pause is resumed.
    #[serde(default)]
    pub next_run_at: Option<DateTime<Utc>>,
}

impl From<Task> for TaskSummaryDto {
    fn from(t: Task) -> Self {
        let next_run_at = next_run_at(&t);
        Self {
            id: t.id,
            task_id: t.task_id,
            task_type: t.task_type.to_string(),
            status: t.status.to_string(),
            repository: t.repository,
            pr_number: t.pr_number,
            created_at: t.created_at,
            completed_at: t.completed_at,
            error_message: t.error_message,
            codegen_task_url: t.codegen_task_url,
            paused: false,
            superseded_by: t.superseded_by,
            next_run_at,
        }
    }
}

/// One attempt in [`TaskDetailDto::executions`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExecutionDto {
    /// Row id.
    pub id: i64,
    /// Attempt id.
    pub execution_id: Uuid,
    /// 1-based attempt number.
    pub attempt: u32,
    /// The worker that ran it.
    pub worker_id: String,
    /// `running`, `completed`, `failed`, `deferred`, `released`, `abandoned` or `cancelled`.
    pub status: String,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub completed_at: Option<DateTime<Utc>>,
    /// Duration in milliseconds.
    pub duration_ms: Option<i64>,
    /// The error of a failed attempt.
    pub error_message: Option<String>,
}

impl From<TaskExecution> for ExecutionDto {
    fn from(e: TaskExecution) -> Self {
        Self {
            id: e.id,
            execution_id: e.execution_id,
            attempt: e.attempt,
            worker_id: e.worker_id,
            status: e.status.as_str().to_owned(),
            started_at: e.started_at,
            completed_at: e.completed_at,
            duration_ms: e.duration_ms,
            error_message: e.error_message,
        }
    }
}

/// `GET /api/v1/tasks/{task_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskDetailDto {
    /// Row id.
    pub id: i64,
    /// Public id.
    pub task_id: Uuid,
    /// The event that caused it.
    pub webhook_event_id: Option<i64>,
    /// The task that asked for this one.
    pub parent_task_id: Option<Uuid>,
    /// Task type.
    pub task_type: String,
    /// Status.
    #[schema(value_type = TaskStatusName)]
    pub status: String,
    /// Higher runs first.
    pub priority: i32,
    /// `owner/name`.
    pub repository: Option<String>,
    /// Pull request number.
    pub pr_number: Option<i64>,
    /// Branch.
    pub branch: Option<String>,
    /// Commit SHA.
    pub commit_sha: Option<String>,
    /// Task configuration.
    #[schema(value_type = Object)]
    pub config: Value,
    /// Input data.
    #[schema(value_type = Object)]
    pub input_data: Value,
    /// Output data.
    #[schema(value_type = Option<Object>)]
    pub output_data: Option<Value>,
    /// First attempt start.
    pub started_at: Option<DateTime<Utc>>,
    /// Finish.
    pub completed_at: Option<DateTime<Utc>>,
    /// The last error.
    pub error_message: Option<String>,
    /// Retries used.
    pub retry_count: u32,
    /// Retries allowed.
    pub max_retries: u32,
    /// The coding agent's run id.
    pub codegen_task_id: Option<String>,
    /// The coding agent's page for that run.
    pub codegen_task_url: Option<String>,
    /// Insert time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The newer task (same repository, pull request and task type, newer head SHA) that
    /// superseded this one, if any.
    pub superseded_by: Option<Uuid>,
    /// Attempts, oldest first.
    pub executions: Vec<ExecutionDto>,
    /// A pause covers it (`POST /api/v1/admin/pause`): it waits, its status unchanged.
    #[serde(default)]
    pub paused: bool,
    /// When a waiting task (`pending` or `retrying`) may next start: its retry's backoff, an
    /// agent-budget deferral or a lease given back; `null` once it runs or has ended. A paused
    /// task waits past it until its pause is resumed.
    #[serde(default)]
    pub next_run_at: Option<DateTime<Utc>>,
}

/// `run_at` of a task that waits to run; `None` for one that runs or has ended.
fn next_run_at(t: &Task) -> Option<DateTime<Utc>> {
    t.status.is_runnable().then_some(t.run_at)
}

impl From<TaskDetail> for TaskDetailDto {
    fn from(d: TaskDetail) -> Self {
        let t = d.task;
        let next_run_at = next_run_at(&t);
        Self {
            id: t.id,
            task_id: t.task_id,
            webhook_event_id: t.webhook_event_id,
            parent_task_id: t.parent_task_id,
            task_type: t.task_type.to_string(),
            status: t.status.to_string(),
            priority: t.priority,
            repository: t.repository,
            pr_number: t.pr_number,
            branch: t.branch,
            commit_sha: t.commit_sha,
            config: t.config,
            input_data: t.input_data,
            output_data: t.output_data,
            started_at: t.started_at,
            completed_at: t.completed_at,
            error_message: t.error_message,
            retry_count: t.retry_count,
            max_retries: t.max_retries,
            codegen_task_id: t.codegen_task_id,
            codegen_task_url: t.codegen_task_url,
            created_at: t.created_at,
            updated_at: t.updated_at,
            superseded_by: t.superseded_by,
            executions: d.executions.into_iter().map(Into::into).collect(),
            paused: false,
            next_run_at,
        }
    }
}

/// A task status, as a filter and in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatusName {
    /// Waiting for a worker.
    Pending,
    /// Claimed by a worker.
    Running,
    /// Waiting for its next attempt.
    Retrying,
    /// Finished successfully.
    Completed,
    /// Failed for good (retryable by an operator).
    Failed,
    /// Cancelled (retryable by an operator).
    Cancelled,
}

/// Query of `GET /api/v1/webhooks/events`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventListQuery {
    /// 1..=1000, default 50.
    #[param(minimum = 1, maximum = 1000, default = 50)]
    pub limit: Option<i64>,
    /// >= 0, default 0.
    #[param(minimum = 0, default = 0)]
    pub offset: Option<i64>,
    /// Only events of this type (an `X-GitHub-Event` name).
    #[param(pattern = "^[a-z0-9_]{1,64}$", min_length = 1, max_length = 64)]
    pub event_type: Option<String>,
    /// Only processed (`true`) or unprocessed (`false`) events.
    pub processed: Option<bool>,
}

/// Query of `POST /api/v1/webhooks/events/{event_id}/reprocess`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReprocessQuery {
    /// `true`: the new tasks may create a Codegen agent run even for a pull-request head SHA
    /// that already has one (by default a head SHA gets at most one run). The flag travels on the
    /// new tasks' `config` (`"force": true`) and on to their `codegen_trigger` follow-ups.
    pub force: Option<bool>,
}

/// Query of `GET /api/v1/tasks`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskListQuery {
    /// 1..=1000, default 50.
    #[param(minimum = 1, maximum = 1000, default = 50)]
    pub limit: Option<i64>,
    /// >= 0, default 0.
    #[param(minimum = 0, default = 0)]
    pub offset: Option<i64>,
    /// Only tasks in this status.
    #[param(value_type = Option<TaskStatusName>)]
    pub status: Option<String>,
    /// Only tasks of this type.
    #[param(pattern = "^[a-z0-9_.-]{1,64}$", min_length = 1, max_length = 64)]
    pub task_type: Option<String>,
    /// Only tasks of this repository (`owner/name`).
    pub repository: Option<String>,
    /// Only tasks superseded by this task (a task id).
    #[param(value_type = Option<Uuid>)]
    pub superseded_by: Option<String>,
    /// Only superseded (`true`) or not superseded (`false`) tasks.
    pub superseded: Option<bool>,
}

/// `POST /api/v1/webhooks/events/{event_id}/reprocess`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReprocessResponse {
    /// `reprocessing`.
    pub status: String,
    /// The first task created by this run (null when the event causes none).
    pub task_id: Option<Uuid>,
    /// Every task created by this run.
    pub task_ids: Vec<Uuid>,
    /// The event.
    pub event_id: i64,
}

/// `POST /api/v1/tasks/{task_id}/retry`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RetryResponse {
    /// `retrying`.
    pub status: String,
    /// The queued task (kept under the spec's Celery-era name).
    pub celery_task_id: Uuid,
    /// The task.
    pub task_id: Uuid,
}

/// `GET /api/v1/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricsSummary {
    /// Stored events.
    pub webhook_events_total: u64,
    /// Stored tasks.
    pub workflow_tasks_total: u64,
    /// Stored executions.
    pub task_executions_total: u64,
    /// Tasks per status.
    pub tasks_by_status: BTreeMap<String, u64>,
    /// Events per type.
    pub events_by_type: BTreeMap<String, u64>,
    /// Mean execution time in milliseconds (null when nothing has run).
    pub avg_processing_time_ms: Option<f64>,
}

/// `POST /api/v1/admin/cleanup`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CleanupResponse {
    /// `cleanup_triggered`.
    pub status: String,
    /// The `cleanup` task; its output holds the counts once a worker ran it
    /// (`GET /api/v1/tasks/{task_id}`).
    pub task_id: Uuid,
}

/// `GET /api/v1/admin/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AdminStats {
    /// The last 24 hours.
    pub recent_activity: RecentActivity,
    /// Failures of the last 24 hours.
    pub error_rates: ErrorRates,
}

/// [`AdminStats::recent_activity`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecentActivity {
    /// Events received.
    pub webhooks_24h: u64,
    /// Tasks created.
    pub tasks_24h: u64,
}

/// [`AdminStats::error_rates`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorRates {
    /// Events with an error.
    pub failed_webhooks_24h: u64,
    /// Failed tasks.
    pub failed_tasks_24h: u64,
    /// Percent of events with an error (0 without traffic).
    pub webhook_error_rate: f64,
    /// Percent of failed tasks (0 without traffic).
    pub task_error_rate: f64,
}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    /// `healthy`, `degraded` or `unhealthy`.
    pub status: String,
    /// When it was measured.
    pub timestamp: DateTime<Utc>,
    /// Each dependency's status (`database`, `celery` = the task queue, and added checks
    /// such as `github_api`).
    pub checks: BTreeMap<String, String>,
    /// Why the service is not healthy: one sentence per check that is not healthy (same key
    /// as in `checks`) and per breaker that is not closed (`breaker:<name>`). Empty (and left
    /// out) when everything is healthy.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reasons: BTreeMap<String, String>,
    /// Circuit breaker states by dependency (`closed`, `open`, `half_open`).
    pub breakers: BTreeMap<String, String>,
    /// The task queue backend (`database`, `redis`, `memory`).
    pub queue_backend: String,
    /// Seconds since the API started.
    pub uptime: f64,
    /// The agent budget of Codegen run creations, when the server shows one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_budget: Option<AgentBudgetHealth>,
}

/// [`HealthResponse::agent_budget`]: the limits and the global rate's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentBudgetHealth {
    /// `memory` (this process's count) or `redis` (shared by every instance).
    pub backend: String,
    /// Run creations per minute over everything (absent: no global rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u32>,
    /// Run creations per repository per hour (absent: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_repo_per_hour: Option<u32>,
    /// Runs per pull-request head SHA (absent: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runs_per_head: Option<u32>,
    /// Global slots free now (absent without a global rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u32>,
    /// When the next global slot frees, while none is free.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_free_at: Option<DateTime<Utc>>,
}

impl From<orchestrator_core::budget::BudgetState> for AgentBudgetHealth {
    fn from(s: orchestrator_core::budget::BudgetState) -> Self {
        Self {
            backend: s.backend.to_owned(),
            per_minute: s.per_minute,
            per_repo_per_hour: s.per_repo_per_hour,
            max_runs_per_head: s.max_runs_per_head,
            remaining: s.remaining,
            next_free_at: s.next_free_at,
        }
    }
}
