//! Cancelling tasks: an operator's cancel of one task (and, with supersede, the stale work of a
//! pull request).
//!
//! # The mechanics every store and worker follow
//! - A cancel is one transaction: a pending, retrying or running task becomes `cancelled`
//!   (`completed_at = now`, the reason in `error_message`, its lease cleared); the execution of
//!   a running attempt is closed `cancelled` at the same time; the event is settled like after
//!   any terminal status. A terminal task is left alone ([`CancelOutcome::Terminal`]).
//! - A cancelled task is never claimed: claim and `start_attempt` take only pending / retrying
//!   rows, so a queue that delivers ids (Redis) finds nothing to start.
//! - A running attempt learns it at its next lease extension (`extend_lease` answers false: the
//!   task is no longer running under its lease): the worker drops the handler's future and
//!   records nothing more. A late `finish_attempt` is a `Conflict` and changes nothing, so
//!   `cancelled` is never overwritten.
//! - The agent-run ledger refuses an intent for a cancelled task
//!   ([`Refusal::TaskCancelled`](super::agent_run::Refusal::TaskCancelled)), in the admission
//!   transaction, serialised with the cancel on the task row: a cancelled task never creates a
//!   coding-agent run after its cancel.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::StoreError;
use crate::store::supersede::{SupersedeOutcome, SupersedeRequest};
use crate::task::{Task, TaskStatus};

/// Why tasks were cancelled (the `reason` label of `tasks_cancelled_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// An operator asked (`POST /api/v1/tasks/{task_id}/cancel`).
    Manual,
    /// A newer head SHA of the same pull request made the task stale.
    Superseded,
    /// The pull request was closed.
    Closed,
}

impl CancelReason {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            CancelReason::Manual => "manual",
            CancelReason::Superseded => "superseded",
            CancelReason::Closed => "closed",
        }
    }
}

/// The `error_message` of a task an operator cancelled.
pub const MANUAL_CANCEL_MESSAGE: &str = "cancelled by an operator";

/// What [`CancelStore::cancel_task`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// The task is cancelled (as stored now).
    Cancelled(Box<Task>),
    /// No task has that id.
    NotFound,
    /// The task was already terminal; nothing was written.
    Terminal(TaskStatus),
}

/// Cancelling tasks (see the module documentation for the mechanics).
#[async_trait]
pub trait CancelStore: Send + Sync + 'static {
    /// In one transaction: a pending, retrying or running task becomes cancelled with
    /// `error_message = message`, `completed_at = updated_at = now`, its lease cleared; a
    /// running execution is closed `cancelled` with the same message; the event is settled.
    async fn cancel_task(
        &self,
        task_id: Uuid,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<CancelOutcome, StoreError>;

    /// In one transaction: records the request's head as the pull request's newest (unless a
    /// newer one is known: then the request is late) and applies the rule of
    /// [`supersede`](crate::store::supersede) to the pull request's open tasks, each cancel
    /// exactly like [`cancel_task`](CancelStore::cancel_task) plus `superseded_by`.
    async fn supersede(
        &self,
        request: &SupersedeRequest,
        now: DateTime<Utc>,
    ) -> Result<SupersedeOutcome, StoreError>;

    /// In one transaction: cancels the open work of a closed pull request with `message`
    /// (pending and retrying tasks; running ones too with `running`), never a task that already
    /// has an agent run. Returns the cancelled tasks.
    async fn cancel_closed(
        &self,
        repository: &str,
        pr_number: i64,
        message: &str,
        running: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError>;
}
