//! Task specifications (what routing asks for) and stored task rows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{TaskExecution, TaskStatus, TaskType};

/// What a routing rule (or a handler's follow-up) asks to be done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Which handler runs it.
    pub task_type: TaskType,
    /// Higher runs first among due tasks.
    pub priority: i32,
    /// `owner/name` of the repository it concerns.
    pub repository: Option<String>,
    /// The pull request it concerns.
    pub pr_number: Option<i64>,
    /// The branch it concerns.
    pub branch: Option<String>,
    /// The commit it concerns.
    pub commit_sha: Option<String>,
    /// Per-task settings from the rule that made it.
    pub config: Value,
    /// The facts from the delivery the handler needs (so it never re-parses the payload).
    pub input_data: Value,
}

impl TaskSpec {
    /// A spec of `task_type` with no repository facts, empty config and input.
    pub fn new(task_type: TaskType) -> Self {
        Self {
            task_type,
            priority: 0,
            repository: None,
            pr_number: None,
            branch: None,
            commit_sha: None,
            config: Value::Object(Default::default()),
            input_data: Value::Object(Default::default()),
        }
    }
}

/// The spec `config` key (a task id) that links a routed task to an existing one as its parent,
/// as if that task had asked for it: the "Ask Codegen to fix" button on an analysis' check
/// (issue 17) routes a `codegen_trigger` whose parent is that analysis, so the analysis' check
/// follows the run. [`NewTask::new`] reads it; a value that is no task id is ignored.
pub const PARENT_TASK_CONFIG_KEY: &str = "parent_task_id";

/// A task ready to be inserted: a spec plus identity, limits and scheduling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTask {
    /// The public id (UUID v7, so ids sort by creation).
    pub task_id: Uuid,
    /// The task that asked for this one, for follow-ups such as `codegen_trigger`.
    pub parent_task_id: Option<Uuid>,
    /// What to do.
    pub spec: TaskSpec,
    /// How many retries after the first attempt.
    pub max_retries: u32,
    /// Not runnable before this instant.
    pub run_at: DateTime<Utc>,
    /// W3C `traceparent` of the span that created it, so its execution continues the trace.
    pub trace_context: Option<String>,
}

impl NewTask {
    /// A new task for `spec`, due at `now`; its parent is the spec's
    /// [`PARENT_TASK_CONFIG_KEY`], if any.
    pub fn new(spec: TaskSpec, max_retries: u32, now: DateTime<Utc>) -> Self {
        let parent_task_id = spec
            .config
            .get(PARENT_TASK_CONFIG_KEY)
            .and_then(Value::as_str)
            .and_then(|id| id.parse().ok());
        Self {
            task_id: Uuid::now_v7(),
            parent_task_id,
            spec,
            max_retries,
            run_at: now,
            trace_context: None,
        }
    }
}

/// A stored task row (the spec's task JSON plus queue bookkeeping).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Store-assigned row id.
    pub id: i64,
    /// Public id.
    pub task_id: Uuid,
    /// The delivery that caused it.
    pub webhook_event_id: Option<i64>,
    /// The task that asked for this one.
    pub parent_task_id: Option<Uuid>,
    /// Which handler runs it.
    pub task_type: TaskType,
    /// Where it is in its life.
    pub status: TaskStatus,
    /// Higher runs first among due tasks.
    pub priority: i32,
    /// `owner/name`.
    pub repository: Option<String>,
    /// Pull request number.
    pub pr_number: Option<i64>,
    /// Branch.
    pub branch: Option<String>,
    /// Commit SHA.
    pub commit_sha: Option<String>,
    /// Per-task settings.
    pub config: Value,
    /// Facts from the delivery.
    pub input_data: Value,
    /// What the handler produced (also progress state of a waiting task).
    pub output_data: Option<Value>,
    /// When the first attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal status.
    pub completed_at: Option<DateTime<Utc>>,
    /// The last error.
    pub error_message: Option<String>,
    /// Retries used so far (failed attempts after which another was scheduled).
    pub retry_count: u32,
    /// Retries allowed.
    pub max_retries: u32,
    /// Claims so far (every execution row).
    pub attempts: u32,
    /// The coding agent's run id, once one was started.
    pub codegen_task_id: Option<String>,
    /// The coding agent's page for that run.
    pub codegen_task_url: Option<String>,
    /// Not runnable before this instant.
    pub run_at: DateTime<Utc>,
    /// The worker holding the lease while running.
    pub lease_owner: Option<String>,
    /// When the running worker's lease runs out.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// W3C `traceparent` of the span that created it.
    pub trace_context: Option<String>,
    /// Insert time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The newer task that made this one stale (same repository, pull request and task type,
    /// a newer head SHA), when it was superseded.
    #[serde(default)]
    pub superseded_by: Option<Uuid>,
}

/// A task with its execution history, as the detail endpoint shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDetail {
    /// The task row.
    pub task: Task,
    /// Its attempts, oldest first.
    pub executions: Vec<TaskExecution>,
}
