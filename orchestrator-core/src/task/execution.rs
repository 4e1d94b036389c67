//! One attempt at running a task.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How one attempt ended (or that it is still going).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// The worker is running it now.
    Running,
    /// The handler succeeded.
    Completed,
    /// The handler failed (the task is then retrying or failed).
    Failed,
    /// The handler asked to run again later without using an attempt.
    Deferred,
    /// The worker gave the task back unfinished (shutdown).
    Released,
    /// The worker's lease ran out before it reported back (it crashed or hung).
    Abandoned,
    /// The work was stopped (the task ended `cancelled`).
    Cancelled,
}

impl ExecutionStatus {
    /// The stored and displayed name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Running => "running",
            ExecutionStatus::Completed => "completed",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Deferred => "deferred",
            ExecutionStatus::Released => "released",
            ExecutionStatus::Abandoned => "abandoned",
            ExecutionStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            ExecutionStatus::Running,
            ExecutionStatus::Completed,
            ExecutionStatus::Failed,
            ExecutionStatus::Deferred,
            ExecutionStatus::Released,
            ExecutionStatus::Abandoned,
            ExecutionStatus::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

/// The record of one attempt (the spec's `executions` entries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskExecution {
    /// Store-assigned row id.
    pub id: i64,
    /// Identifies the attempt everywhere (logs, traces).
    pub execution_id: Uuid,
    /// The task it belongs to.
    pub task_id: Uuid,
    /// 1 for the first attempt, counting every claim of the task.
    pub attempt: u32,
    /// Which worker ran it.
    pub worker_id: String,
    /// How it ended.
    pub status: ExecutionStatus,
    /// When the worker claimed the task.
    pub started_at: DateTime<Utc>,
    /// When it ended, if it has.
    pub completed_at: Option<DateTime<Utc>>,
    /// `completed_at - started_at` in milliseconds.
    pub duration_ms: Option<i64>,
    /// The error of a failed attempt.
    pub error_message: Option<String>,
}
