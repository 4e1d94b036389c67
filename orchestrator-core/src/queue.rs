//! The task queue contract: how workers get tasks and hand them back.
//!
//! Task *state* lives in the [`TaskStore`](crate::store::TaskStore); a queue decides which task a
//! worker gets next. A database-backed queue claims straight from the task table; a broker-backed
//! queue (Redis Streams) delivers task ids and confirms each with
//! [`TaskStore::start_attempt`](crate::store::TaskStore::start_attempt), so a message delivered
//! twice never runs a task twice.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::StoreError;
use crate::store::FinishReport;
use crate::task::{ExecutionStatus, NewTask, Task, TaskStatus, Transition};

/// A task taken by a worker, with the lease it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The task as it was when claimed (status running).
    pub task: Task,
    /// The execution row of this attempt.
    pub execution_id: Uuid,
    /// Attempt number (1-based, every claim counts).
    pub attempt: u32,
    /// The worker holding it.
    pub worker_id: String,
    /// When the lease runs out unless extended.
    pub lease_expires_at: DateTime<Utc>,
    /// A queue-specific handle (e.g. a Redis stream entry id) to acknowledge the delivery.
    pub receipt: Option<String>,
}

/// How an attempt ended, as the worker reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    /// Success: store `output`, insert `followups`.
    Completed {
        /// The handler's output (`output_data`).
        output: Value,
        /// Follow-up tasks (parent and event links are set by the store).
        followups: Vec<NewTask>,
    },
    /// A failed attempt with retries left: retrying, due at `at`, retry count + 1.
    Retry {
        /// The error.
        error: String,
        /// Due time of the next attempt.
        at: DateTime<Utc>,
    },
    /// A permanent failure or retries exhausted.
    Failed {
        /// The error.
        error: String,
    },
    /// Run again at `at` without using an attempt (open breaker, polling an external run).
    Deferred {
        /// Due time.
        at: DateTime<Utc>,
        /// Why (kept as the execution's note).
        reason: String,
        /// New `output_data` (progress state), when the handler gave one.
        output: Option<Value>,
    },
    /// Given back unfinished (shutdown): pending and due now, no attempt used.
    Released,
    /// The handler judged the work ended without success (e.g. the agent reported its run
    /// failed, or a person stopped it): `failed` or `cancelled` as `end` says, whatever retries
    /// are left, with `output` stored and `error` as the error message. Only a manual retry runs
    /// it again.
    Ended {
        /// Failed or cancelled.
        end: TaskEnd,
        /// The task's `error_message` (and the execution's).
        error: String,
        /// The handler's output (`output_data`).
        output: Value,
    },
}

/// How a handler ended a task that did not succeed ([`Finish::Ended`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskEnd {
    /// The work failed: the task becomes `failed`.
    Failed,
    /// Someone outside the orchestrator stopped the work (a person stopped the agent's run): the
    /// task becomes `cancelled`.
    Cancelled,
}

impl TaskEnd {
    /// The task's status afterwards.
    pub const fn status(self) -> TaskStatus {
        match self {
            TaskEnd::Failed => TaskStatus::Failed,
            TaskEnd::Cancelled => TaskStatus::Cancelled,
        }
    }

    /// The state-machine transition from `running`.
    pub const fn transition(self) -> Transition {
        match self {
            TaskEnd::Failed => Transition::Fail,
            TaskEnd::Cancelled => Transition::Cancel,
        }
    }

    /// How the attempt's execution ended.
    pub const fn execution(self) -> ExecutionStatus {
        match self {
            TaskEnd::Failed => ExecutionStatus::Failed,
            TaskEnd::Cancelled => ExecutionStatus::Cancelled,
        }
    }
}

/// How much work is waiting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDepth {
    /// Runnable and due now.
    pub ready: u64,
    /// Runnable but due later (retries, deferrals).
    pub scheduled: u64,
    /// Claimed by a worker.
    pub running: u64,
    /// Given up by the broker after too many deliveries (broker queues only).
    pub dead_letter: u64,
}

/// A reference to a committed task, for publishing it to a broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskRef {
    /// The task.
    pub task_id: Uuid,
    /// When it is due.
    pub run_at: DateTime<Utc>,
}

/// Hands tasks to workers.
#[async_trait]
pub trait TaskQueue: Send + Sync + 'static {
    /// Makes tasks that were just committed visible to workers. A database queue needs nothing
    /// (its rows are the queue); a broker publishes them. A failure here loses nothing: the
    /// tasks are in the store and a sweeper publishes them later.
    async fn publish(&self, tasks: &[TaskRef]) -> Result<(), StoreError>;

    /// Takes up to `max` due tasks for `worker`, each with a lease of `lease`.
    async fn claim(
        &self,
        worker: &str,
        max: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>, StoreError>;

    /// Records how an attempt ended and acknowledges the delivery.
    async fn finish(
        &self,
        claim: &Claim,
        finish: Finish,
        now: DateTime<Utc>,
    ) -> Result<FinishReport, StoreError>;

    /// Extends a running claim's lease; false when the claim lost the task.
    async fn extend_lease(
        &self,
        claim: &Claim,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Returns tasks whose worker's lease ran out to the queue; how many.
    async fn requeue_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Queue depth, for metrics and health.
    async fn depth(&self, now: DateTime<Utc>) -> Result<QueueDepth, StoreError>;

    /// The queue's name for health and logs (`database`, `redis`, `memory`).
    fn backend(&self) -> &'static str;
}
