//! Task handlers and the registry that maps task types to them.
//!
//! A handler does the work of one task type. The registry is how users add their own types or
//! replace a built-in handler without forking: `registry.register(TaskType::new("x")?, handler)`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::error::TaskError;
use crate::store::ExternalRun;
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
}

impl HandlerOutcome {
    /// Completed with `output` and no follow-ups.
    pub fn done(output: Value) -> Self {
        HandlerOutcome::Completed {
            output,
            followups: Vec::new(),
        }
    }
}

/// Lets a running handler persist facts before it returns (so a crash cannot lose them).
#[async_trait]
pub trait TaskProgress: Send + Sync {
    /// Records an external run started for the task (and on its parent task).
    async fn record_external_run(&self, task_id: Uuid, run: &ExternalRun) -> Result<(), TaskError>;
}

/// Everything a handler gets for one attempt.
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
    /// A context for `task`.
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
