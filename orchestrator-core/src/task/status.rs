//! The task status state machine.
//!
//! ```text
//!             claim                complete
//!  pending ─────────► running ─────────────► completed
//!     ▲  ▲              │ │ │ fail (permanent or retries exhausted)
//!     │  │ defer/release│ │ └──────────────► failed ──┐
//!     │  └──────────────┘ │ retry (attempt failed)     │ manual retry
//!     │                   ▼                            │
//!     │   claim      retrying ◄── lease expired        │
//!     │   (back to running)                            │
//!     └────────────────────────────────────────────────┘
//!  cancel: pending | retrying | running -> cancelled; manual retry: cancelled -> pending
//! ```
//!
//! A terminal state (completed, failed, cancelled) is left only through an explicit manual retry,
//! and a completed task is never run again.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for a worker; runnable once its due time has passed.
    Pending,
    /// Claimed by a worker that holds a lease on it.
    Running,
    /// An attempt failed with a retryable error; runnable again at its due time.
    Retrying,
    /// Finished successfully. Terminal.
    Completed,
    /// Failed permanently or ran out of retries. Terminal; a manual retry re-opens it.
    Failed,
    /// Cancelled before it finished. Terminal; a manual retry re-opens it.
    Cancelled,
}

/// Something that moves a task from one status to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// A worker takes the task (pending | retrying -> running).
    Claim,
    /// The handler succeeded (running -> completed).
    Complete,
    /// The attempt failed and another is allowed (running -> retrying).
    ScheduleRetry,
    /// The attempt failed permanently or retries are exhausted (running -> failed).
    Fail,
    /// The handler asked to run again later without using an attempt, e.g. an open circuit
    /// breaker or a poll of an external run (running -> pending).
    Defer,
    /// The worker gave the task back unfinished, e.g. at shutdown (running -> pending).
    Release,
    /// The worker's lease ran out; the attempt counts as failed (running -> retrying).
    LeaseExpired,
    /// An operator cancelled the task (pending | retrying | running -> cancelled).
    Cancel,
    /// An operator asked for another run (failed | cancelled -> pending).
    ManualRetry,
}

/// A transition that the state machine does not allow from the current status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {transition:?} a task that is {from}")]
pub struct IllegalTransition {
    /// The status the task was in.
    pub from: TaskStatus,
    /// The transition that was refused.
    pub transition: Transition,
}

/// A status string that names no status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown task status {0:?}")]
pub struct UnknownStatus(pub String);

impl TaskStatus {
    /// Every status, in life-cycle order.
    pub const ALL: [TaskStatus; 6] = [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Retrying,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];

    /// The stored and displayed name.
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Retrying => "retrying",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// Completed, failed or cancelled: nothing will run it again unless an operator retries it.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }

    /// Pending or retrying: a worker may claim it once it is due.
    pub const fn is_runnable(self) -> bool {
        matches!(self, TaskStatus::Pending | TaskStatus::Retrying)
    }

    /// Whether an operator may retry a task in this status (failed or cancelled).
    pub const fn is_manually_retryable(self) -> bool {
        matches!(self, TaskStatus::Failed | TaskStatus::Cancelled)
    }

    /// Applies `transition`, or says why it is not allowed.
    pub fn apply(self, transition: Transition) -> Result<TaskStatus, IllegalTransition> {
        use TaskStatus as S;
        use Transition as T;
        let next = match (self, transition) {
            (S::Pending | S::Retrying, T::Claim) => S::Running,
            (S::Running, T::Complete) => S::Completed,
            (S::Running, T::ScheduleRetry | T::LeaseExpired) => S::Retrying,
            (S::Running, T::Fail) => S::Failed,
            (S::Running, T::Defer | T::Release) => S::Pending,
            (S::Pending | S::Retrying | S::Running, T::Cancel) => S::Cancelled,
            (S::Failed | S::Cancelled, T::ManualRetry) => S::Pending,
            (from, transition) => return Err(IllegalTransition { from, transition }),
        };
        Ok(next)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TaskStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}
