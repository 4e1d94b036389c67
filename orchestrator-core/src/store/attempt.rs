//! [`AttemptStore`]: the state changes that queues and workers drive — claim, finish, lease
//! renewal and expiry, stale runnable tasks, agent runs recorded on a task — and their
//! vocabulary ([`Claim`], [`Finish`], [`FinishReport`], [`QueueDepth`]).
//!
//! Task *state* lives here; a queue ([`TaskQueue`](crate::queue::TaskQueue)) only decides which
//! task a worker gets next. A database queue ([`StoreQueue`](crate::queue::StoreQueue)) claims
//! straight from the task table with [`AttemptStore::claim_due`]; a broker-backed queue (Redis
//! Streams) delivers task ids and confirms each with [`AttemptStore::start_attempt`], so a
//! message delivered twice never runs a task twice.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::ExternalRun;
use crate::error::StoreError;
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

/// What [`AttemptStore::finish_attempt`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishReport {
    /// The task's status afterwards.
    pub status: TaskStatus,
    /// When it is due again (retrying / pending), if it is.
    pub run_at: Option<DateTime<Utc>>,
    /// Follow-up tasks inserted.
    pub followups: Vec<Uuid>,
}

/// The attempt state machine of tasks, as queues and workers drive it.
#[async_trait]
pub trait AttemptStore: Send + Sync + 'static {
    /// Records the agent run started by `task_id` on the task and on its parent task, at once, so a
    /// retried attempt finds it and never starts a second run.
    async fn record_external_run(
        &self,
        task_id: Uuid,
        run: &ExternalRun,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Takes up to `max` runnable, due tasks for `worker` in claim order (priority desc, `run_at`
    /// asc, row id asc), each as [`start_attempt`](AttemptStore::start_attempt) would: status
    /// running, lease until `lease_until`, a new execution row. A database queue
    /// ([`StoreQueue`](crate::queue::StoreQueue)) claims through this.
    async fn claim_due(
        &self,
        worker: &str,
        max: usize,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>, StoreError>;

    /// Takes one task for `worker` if it is runnable and due: status -> running, lease until
    /// `lease_until`, a new execution row. `None` when it is not runnable (already taken,
    /// finished, unknown or not yet due). Queues that deliver ids (Redis) call this; a database
    /// queue claims with [`claim_due`](AttemptStore::claim_due) instead.
    async fn start_attempt(
        &self,
        task_id: Uuid,
        worker: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Claim>, StoreError>;

    /// Records how the attempt of `claim` ended, in one transaction: the task's new status, the
    /// execution row, follow-up tasks (linked to the same event, parented to this task), and the
    /// event's processed flag when its last task finished. Fails with
    /// [`StoreErrorKind::Conflict`](crate::error::StoreErrorKind::Conflict) when the claim no
    /// longer holds the task (its lease expired and another worker took it).
    async fn finish_attempt(
        &self,
        claim: &Claim,
        finish: Finish,
        now: DateTime<Utc>,
    ) -> Result<FinishReport, StoreError>;

    /// Moves the lease of a running claim to `lease_until`; false when the claim lost the task.
    async fn extend_lease(
        &self,
        claim: &Claim,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Running tasks whose lease ran out: the execution becomes abandoned and the task retrying
    /// (due now) or failed when its retries are used up. Returns the tasks made runnable again.
    async fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError>;

    /// Runnable tasks that are due and were last changed before `stale_before` (for a queue
    /// that must re-publish what it may have lost), oldest first, at most `limit`.
    async fn stale_runnable(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// How much work is waiting in the task table (a database queue's depth).
    async fn queue_depth(&self, now: DateTime<Utc>) -> Result<QueueDepth, StoreError>;

    /// The name a queue over this store reports (`database`; the in-memory store says
    /// `memory`), for health and logs.
    fn queue_name(&self) -> &'static str {
        "database"
    }
}
