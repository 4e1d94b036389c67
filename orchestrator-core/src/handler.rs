//! Task handlers and the registry that maps task types to them.
//!
//! A handler does the work of one task type. The registry is how users add their own types or
//! replace a built-in handler without forking: `registry.register(TaskType::new("x")?, handler)`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::TaskError;
use crate::event::WebhookEvent;
use crate::github::RepoRef;
use crate::store::ExternalRun;
use crate::store::TaskEnd;
use crate::task::{Task, TaskSpec, TaskType};

/// What a successful (or waiting) handler call produced.
#[derive(Debug, Clone, PartialEq)]
pub enum HandlerOutcome {
    /// Done: store `output` and create `followups` (linked to this task and its event).
    Completed {
        /// Stored as `output_data`.
        output: Value,
        /// Tasks to run next, e.g. a `codegen_trigger` after an analysis.
        followups: Vec<TaskSpec>,
    },
    /// Not done yet, nothing failed: run again after `after` without holding a worker slot or
    /// using an attempt (e.g. following an agent run). `output` is kept as progress state.
    Waiting {
        /// How long to wait.
        after: Duration,
        /// Progress state stored as `output_data`, read back on the next call.
        output: Option<Value>,
    },
    /// The work ended without success, and trying again automatically would not help or would
    /// cost (e.g. the agent reported that its run failed: each run is paid for). The task ends
    /// `failed` or `cancelled` as `end` says, with no automatic retry; a manual retry runs it
    /// again.
    Ended {
        /// Failed or cancelled.
        end: TaskEnd,
        /// Stored as `error_message`: what happened, for a person.
        error: String,
        /// Stored as `output_data`.
        output: Value,
    },
}

impl HandlerOutcome {
    /// Completed with `output` and no follow-ups.
    pub fn done(output: Value) -> Self {
        HandlerOutcome::Completed {
            output,
            followups: Vec::new(),
        }
    }

    /// Ended `failed` (no automatic retry) with `error` and `output`.
    pub fn failed(error: impl Into<String>, output: Value) -> Self {
        HandlerOutcome::Ended {
            end: TaskEnd::Failed,
            error: error.into(),
            output,
        }
    }

    /// Ended `cancelled` (stopped outside the orchestrator) with `reason` and `output`.
    pub fn cancelled(reason: impl Into<String>, output: Value) -> Self {
        HandlerOutcome::Ended {
            end: TaskEnd::Cancelled,
            error: reason.into(),
            output,
        }
    }

    /// Adds a follow-up task (see [`TaskContext::followup`]); a `Waiting` outcome has none, so
    /// nor an `Ended` one, so it is returned unchanged.
    pub fn with_followup(mut self, spec: TaskSpec) -> Self {
        if let HandlerOutcome::Completed { followups, .. } = &mut self {
            followups.push(spec);
        }
        self
    }
}

/// The error of [`TaskContext::event`] on a worker without an event store.
pub(crate) const NO_EVENT_STORE: &str =
    "this worker cannot read stored events (build it with Worker::with_events)";

/// What a running handler may ask of the worker: persist facts before it returns (so a crash
/// cannot lose them) and read the delivery its task came from.
#[async_trait]
pub trait TaskProgress: Send + Sync {
    /// Records an external run started for the task (and on its parent task).
    async fn record_external_run(&self, task_id: Uuid, run: &ExternalRun) -> Result<(), TaskError>;

    /// The stored delivery `event_id`, with its payload. The default reads nothing: a worker
    /// built without an event store answers with a permanent error.
    async fn event(&self, event_id: i64) -> Result<Option<WebhookEvent>, TaskError> {
        let _ = event_id;
        Err(TaskError::permanent(NO_EVENT_STORE))
    }
}

/// Everything a handler gets for one attempt: the task's facts, the time, a way to record
/// progress and read the delivery, follow-up specs, and a cancellation signal.
///
/// A handler reports its result by returning a [`HandlerOutcome`] (output, follow-ups, or
/// "wait and call again"); facts that must survive a crash before it returns (an agent run
/// that was started) go through [`record_external_run`](Self::record_external_run).
#[derive(Clone)]
pub struct TaskContext {
    /// The task as claimed.
    pub task: Task,
    /// Attempt number, 1-based.
    pub attempt: u32,
    /// The execution row of this attempt.
    pub execution_id: Uuid,
    /// The time the attempt started (from the injected clock).
    pub now: DateTime<Utc>,
    progress: Arc<dyn TaskProgress>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskContext")
            .field("task_id", &self.task.task_id)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl TaskContext {
    /// A context for `task`, with a cancellation signal nobody fires (see
    /// [`with_cancellation`](Self::with_cancellation)).
    pub fn new(
        task: Task,
        attempt: u32,
        execution_id: Uuid,
        now: DateTime<Utc>,
        progress: Arc<dyn TaskProgress>,
    ) -> Self {
        Self {
            task,
            attempt,
            execution_id,
            now,
            progress,
            cancel: CancellationToken::new(),
        }
    }

    /// Uses `cancel` as the attempt's cancellation signal.
    pub fn with_cancellation(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// Fired when the attempt is given up: shutdown past its grace period, or the lease was
    /// lost to another worker. The handler's future is dropped soon after; check it before an
    /// irreversible step (e.g. [`is_cancelled`](Self::is_cancelled) before starting an agent
    /// run), or tie work the handler spawns to it.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Whether the attempt has been given up.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The task's `input_data` as `T` (what its rule or parent task wrote). A mismatch can never
    /// succeed on a retry, so it is a permanent error.
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, TaskError> {
        serde_json::from_value(self.task.input_data.clone()).map_err(|e| {
            TaskError::permanent(format!(
                "invalid input_data for {}: {e}",
                self.task.task_type
            ))
        })
    }

    /// The GitHub App installation the task's delivery came from, as its rule wrote it in
    /// `input_data` (`installation_id`: every built-in rule and [`EventRule`] do); `None` for
    /// a personal-token set-up.
    ///
    /// [`EventRule`]: crate::routing::EventRule
    pub fn installation_id(&self) -> Option<i64> {
        self.task.input_data.get("installation_id")?.as_i64()
    }

    /// The task's repository (`owner/name`); a permanent error when it has none.
    pub fn repo(&self) -> Result<RepoRef, TaskError> {
        self.task
            .repository
            .as_deref()
            .and_then(RepoRef::parse)
            .ok_or_else(|| TaskError::permanent("task has no valid repository (owner/name)"))
    }

    /// The stored delivery this task came from, payload included (one store read). A
    /// permanent error for a task without an event (or whose event was removed).
    pub async fn event(&self) -> Result<WebhookEvent, TaskError> {
        let id = self
            .task
            .webhook_event_id
            .ok_or_else(|| TaskError::permanent("task has no webhook event"))?;
        self.progress
            .event(id)
            .await?
            .ok_or_else(|| TaskError::permanent(format!("webhook event {id} no longer exists")))
    }

    /// The payload of the delivery this task came from, read as `T` (declare only the fields
    /// the handler needs). A payload that does not fit `T` is a permanent error.
    pub async fn payload<T: DeserializeOwned>(&self) -> Result<T, TaskError> {
        let event = self.event().await?;
        serde_json::from_slice(&event.payload).map_err(|e| {
            TaskError::permanent(format!(
                "payload of event {} does not fit {}: {e}",
                event.id, self.task.task_type
            ))
        })
    }

    /// A follow-up of `task_type` about the same repository, pull request, branch and commit as
    /// this task, with empty input; set its `input_data` and return it in
    /// [`HandlerOutcome::with_followup`]. It is linked to this task and its event when stored.
    pub fn followup(&self, task_type: TaskType) -> TaskSpec {
        TaskSpec {
            priority: self.task.priority,
            repository: self.task.repository.clone(),
            pr_number: self.task.pr_number,
            branch: self.task.branch.clone(),
            commit_sha: self.task.commit_sha.clone(),
            ..TaskSpec::new(task_type)
        }
    }

    /// Persists an external run started by this task, before the handler returns.
    pub async fn record_external_run(&self, run: &ExternalRun) -> Result<(), TaskError> {
        self.progress
            .record_external_run(self.task.task_id, run)
            .await
    }
}

/// The work of one task type.
#[async_trait]
pub trait TaskHandler: Send + Sync + 'static {
    /// Runs one attempt.
    async fn handle(&self, ctx: &TaskContext) -> Result<HandlerOutcome, TaskError>;
}

/// Handlers by task type.
#[derive(Clone, Default)]
pub struct HandlerRegistry {
    handlers: HashMap<TaskType, Arc<dyn TaskHandler>>,
}

impl std::fmt::Debug for HandlerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut types: Vec<_> = self.handlers.keys().map(TaskType::as_str).collect();
        types.sort_unstable();
        f.debug_struct("HandlerRegistry")
            .field("types", &types)
            .finish()
    }
}

impl HandlerRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) the handler of `task_type`; returns the one it replaced.
    pub fn register(
        &mut self,
        task_type: TaskType,
        handler: impl TaskHandler,
    ) -> Option<Arc<dyn TaskHandler>> {
        self.handlers.insert(task_type, Arc::new(handler))
    }

    /// Registers a shared handler.
    pub fn register_arc(
        &mut self,
        task_type: TaskType,
        handler: Arc<dyn TaskHandler>,
    ) -> Option<Arc<dyn TaskHandler>> {
        self.handlers.insert(task_type, handler)
    }

    /// Removes the handler of `task_type`.
    pub fn remove(&mut self, task_type: &TaskType) -> Option<Arc<dyn TaskHandler>> {
        self.handlers.remove(task_type)
    }

    /// The handler of `task_type`.
    pub fn get(&self, task_type: &TaskType) -> Option<&Arc<dyn TaskHandler>> {
        self.handlers.get(task_type)
    }

    /// The registered types, sorted.
    pub fn task_types(&self) -> Vec<TaskType> {
        let mut types: Vec<_> = self.handlers.keys().cloned().collect();
        types.sort();
        types
    }
}
