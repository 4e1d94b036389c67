//! [`CancelStore`] for [`MemoryStore`]: a cancel is one change under the store's lock, so it
//! cannot interleave with a claim, a finish or an agent-run admission.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::MemoryStore;
use super::state::{State, close};
use crate::error::StoreError;
use crate::store::cancel::{CancelOutcome, CancelStore};
use crate::store::supersede::{SupersedeOutcome, SupersedeRequest};
use crate::task::{ExecutionStatus, TaskStatus, Transition};

impl State {
    /// Cancels one open task (see [`CancelStore::cancel_task`]); `superseded_by` is recorded
    /// when given.
    pub(super) fn cancel(
        &mut self,
        task_id: Uuid,
        message: &str,
        superseded_by: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> CancelOutcome {
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return CancelOutcome::NotFound;
        };
        let next = match task.status.apply(Transition::Cancel) {
            Ok(next) => next,
            Err(err) => return CancelOutcome::Terminal(err.from),
        };
        let was_running = task.status == TaskStatus::Running;
        task.status = next;
        task.completed_at = Some(now);
        task.error_message = Some(message.to_owned());
        task.lease_owner = None;
        task.lease_expires_at = None;
        task.superseded_by = superseded_by.or(task.superseded_by);
        task.updated_at = now;
        let task = task.clone();
        if was_running && let Some(list) = self.executions.get_mut(&task_id) {
            for execution in list
                .iter_mut()
                .filter(|e| e.status == ExecutionStatus::Running)
            {
                close(
                    execution,
                    ExecutionStatus::Cancelled,
                    Some(message.to_owned()),
                    now,
                );
            }
        }
        self.settle_event(task.webhook_event_id, now);
        CancelOutcome::Cancelled(Box::new(task))
    }
}

#[async_trait]
impl CancelStore for MemoryStore {
    async fn cancel_task(
        &self,
        task_id: Uuid,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<CancelOutcome, StoreError> {
        Ok(self.lock().cancel(task_id, message, None, now))
    }

    async fn supersede(
        &self,
        request: &SupersedeRequest,
        now: DateTime<Utc>,
    ) -> Result<SupersedeOutcome, StoreError> {
        Ok(self.lock().supersede(request, now))
    }

    async fn cancel_closed(
        &self,
        repository: &str,
        pr_number: i64,
        message: &str,
        running: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError> {
        Ok(self
            .lock()
            .close_pr(repository, pr_number, message, running, now))
    }
}
