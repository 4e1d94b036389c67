//! What a finished attempt writes, worked out once for both databases.
//!
//! [`FinishPlan::new`] turns the worker's [`Finish`] into column values, following the core
//! state machine ([`TaskStatus::apply`]); the SQL of each database only applies them.

use chrono::{DateTime, Utc};
use orchestrator_core::store::Finish;
use orchestrator_core::task::{ExecutionStatus, NewTask, TaskStatus, Transition};
use serde_json::Value;

/// The column changes of one `finish`.
#[derive(Debug)]
pub(crate) struct FinishPlan {
    /// The task's new status.
    pub(crate) status: TaskStatus,
    /// How the execution ended.
    pub(crate) execution: ExecutionStatus,
    /// Set `completed_at = now` (completed, failed, ended).
    pub(crate) completed: bool,
    /// New due time; `None` keeps it.
    pub(crate) run_at: Option<DateTime<Utc>>,
    /// New `output_data` (JSON text); `None` keeps it.
    pub(crate) output: Option<String>,
    /// Replace `error_message` with `error` (which may be `None` to clear it).
    pub(crate) set_error: bool,
    /// The task's error.
    pub(crate) error: Option<String>,
    /// Added to `retry_count`.
    pub(crate) retry_inc: i32,
    /// The execution's error / note.
    pub(crate) execution_error: Option<String>,
    /// Follow-up tasks to insert.
    pub(crate) followups: Vec<NewTask>,
}

impl FinishPlan {
    /// The plan for `finish` of a running task at `now`.
    pub(crate) fn new(finish: Finish, now: DateTime<Utc>) -> Self {
        let running = TaskStatus::Running;
        let next = |t: Transition| running.apply(t).unwrap_or(running);
        let base = |status, execution| FinishPlan {
            status,
            execution,
            completed: false,
            run_at: None,
            output: None,
            set_error: false,
            error: None,
            retry_inc: 0,
            execution_error: None,
            followups: Vec::new(),
        };
        match finish {
            Finish::Completed { output, followups } => FinishPlan {
                completed: true,
                output: Some(output.to_string()),
                set_error: true,
                followups,
                ..base(next(Transition::Complete), ExecutionStatus::Completed)
            },
            Finish::Retry { error, at } => FinishPlan {
                run_at: Some(at),
                set_error: true,
                error: Some(error.clone()),
                retry_inc: 1,
                execution_error: Some(error),
                ..base(next(Transition::ScheduleRetry), ExecutionStatus::Failed)
            },
            Finish::Failed { error } => FinishPlan {
                completed: true,
                set_error: true,
                error: Some(error.clone()),
                execution_error: Some(error),
                ..base(next(Transition::Fail), ExecutionStatus::Failed)
            },
            Finish::Deferred { at, reason, output } => FinishPlan {
                run_at: Some(at),
                output: output.map(|v| v.to_string()),
                execution_error: Some(reason),
                ..base(next(Transition::Defer), ExecutionStatus::Deferred)
            },
            Finish::Released => FinishPlan {
                run_at: Some(now),
                ..base(next(Transition::Release), ExecutionStatus::Released)
            },
            Finish::Ended { end, error, output } => FinishPlan {
                completed: true,
                output: Some(output.to_string()),
                set_error: true,
                error: Some(error.clone()),
                execution_error: Some(error),
                ..base(next(end.transition()), end.execution())
            },
        }
    }

    /// The change of the event's count of open tasks: -1 when this task became terminal, plus
    /// the follow-ups.
    pub(crate) fn open_delta(&self) -> i32 {
        let closed = i32::from(self.status.is_terminal());
        i32::try_from(self.followups.len()).unwrap_or(i32::MAX) - closed
    }

    /// The error that becomes the event's error when this was its last open task.
    pub(crate) fn failed_error(&self) -> Option<String> {
        (self.status == TaskStatus::Failed)
            .then(|| self.error.clone())
            .flatten()
    }
}

/// The message of an expired lease (same wording as the in-memory store).
pub(crate) fn lease_expired_message(owner: &str) -> String {
    format!("lease of worker {owner} expired before it reported back")
}

/// `{}` for a JSON null, else the value; as JSON text.
pub(crate) fn json_text(value: &Value) -> String {
    if value.is_null() {
        "{}".to_owned()
    } else {
        value.to_string()
    }
}

/// Headers as stored: `[[name, value], ...]`.
pub(crate) fn headers_json(headers: &[(String, String)]) -> String {
    serde_json::to_string(headers).unwrap_or_else(|_| "[]".to_owned())
}

/// Headers read back.
pub(crate) fn parse_headers(
    text: &str,
) -> Result<Vec<(String, String)>, orchestrator_core::error::StoreError> {
    serde_json::from_str(text).map_err(|e| crate::error::corrupt(format!("headers: {e}")))
}

/// A stored non-negative counter.
pub(crate) fn count(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

/// A counter to store.
pub(crate) fn to_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// A stored task status.
pub(crate) fn parse_status(text: &str) -> Result<TaskStatus, orchestrator_core::error::StoreError> {
    text.parse().map_err(crate::error::corrupt)
}

/// A stored execution status.
pub(crate) fn parse_execution_status(
    text: &str,
) -> Result<ExecutionStatus, orchestrator_core::error::StoreError> {
    ExecutionStatus::parse(text)
        .ok_or_else(|| crate::error::corrupt(format!("execution status {text:?}")))
}

/// A stored task type.
pub(crate) fn parse_task_type(
    text: String,
) -> Result<orchestrator_core::task::TaskType, orchestrator_core::error::StoreError> {
    orchestrator_core::task::TaskType::new(text).map_err(crate::error::corrupt)
}

/// The claim of a freshly claimed task row.
pub(crate) fn claim_of(
    task: orchestrator_core::task::Task,
    execution_id: uuid::Uuid,
    worker: &str,
    lease_until: DateTime<Utc>,
) -> orchestrator_core::store::Claim {
    orchestrator_core::store::Claim {
        attempt: task.attempts,
        task,
        execution_id,
        worker_id: worker.to_owned(),
        lease_expires_at: lease_until,
        receipt: None,
    }
}

/// Sorts claims into claim order: priority desc, due time asc, row id asc.
pub(crate) fn sort_claims(claims: &mut [orchestrator_core::store::Claim]) {
    claims.sort_by(|a, b| {
        b.task
            .priority
            .cmp(&a.task.priority)
            .then(a.task.run_at.cmp(&b.task.run_at))
            .then(a.task.id.cmp(&b.task.id))
    });
}

/// `now - age`, saturating far in the past.
pub(crate) fn cutoff(now: DateTime<Utc>, age: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(age)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Every task status with a zero count.
pub(crate) fn fill_statuses() -> std::collections::BTreeMap<String, u64> {
    TaskStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect()
}
