//! [`OperationStore`] for [`MemoryStore`]: operations in the one locked state, so a retry batch
//! (the check that a task is unchanged and its retry) is one transaction, like the SQL stores'.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::MemoryStore;
use super::state::State;
use crate::error::StoreError;
use crate::event::WebhookEvent;
use crate::queue::TaskRef;
use crate::store::operation::{
    CancelOperation, Operation, OperationFilter, OperationKind, OperationStatus, OperationStore,
    Preview, Progress, RetryBatch,
};
use crate::store::{Page, RetryOutcome};
use crate::task::Task;

impl State {
    /// Matching tasks by row id, unchanged since `as_of`.
    fn matching_tasks(&self, filter: &OperationFilter, as_of: DateTime<Utc>) -> Vec<&Task> {
        let mut tasks: Vec<&Task> = self
            .tasks
            .values()
            .filter(|t| t.updated_at <= as_of && filter.matches_task(t))
            .filter(|t| {
                if filter.event_type.is_none() {
                    return true;
                }
                t.webhook_event_id
                    .and_then(|id| self.events.get(&id))
                    .is_some_and(|e| filter.matches_event(&e.event_type, e.action.as_deref()))
            })
            .collect();
        tasks.sort_by_key(|t| t.id);
        tasks
    }

    /// Whether `event` matches `filter` and got no task after `as_of`.
    fn event_matches(
        &self,
        event: &WebhookEvent,
        filter: &OperationFilter,
        as_of: DateTime<Utc>,
    ) -> bool {
        let tasks = || {
            self.event_tasks
                .get(&event.id)
                .into_iter()
                .flatten()
                .filter_map(|id| self.tasks.get(id))
        };
        event.created_at <= as_of
            && filter.matches_event(&event.event_type, event.action.as_deref())
            && filter
                .repository
                .as_ref()
                .is_none_or(|r| event.repository.as_ref() == Some(r))
            && filter.error_contains.as_deref().is_none_or(|needle| {
                event
                    .error_message
                    .as_deref()
                    .is_some_and(|m| m.contains(needle))
            })
            && filter.created_after.is_none_or(|t| event.created_at >= t)
            && filter.created_before.is_none_or(|t| event.created_at < t)
            && filter
                .pr_number
                .is_none_or(|n| tasks().any(|t| t.pr_number == Some(n)))
            && tasks().all(|t| t.created_at <= as_of)
    }

    fn operation_mut(&mut self, id: Uuid) -> Option<&mut Operation> {
        self.operations.iter_mut().find(|o| o.id == id)
    }

    /// The running operation `id` if `worker` holds it.
    fn held(&mut self, id: Uuid, worker: &str) -> Option<&mut Operation> {
        self.operation_mut(id).filter(|o| {
            o.status == OperationStatus::Running && o.lease_owner.as_deref() == Some(worker)
        })
    }

    fn retry_batch(
        &mut self,
        id: Uuid,
        worker: &str,
        limit: u32,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> RetryBatch {
        let Some(op) = self.held(id, worker).cloned() else {
            return RetryBatch::default();
        };
        let picked: Vec<(i64, Uuid)> = self
            .matching_tasks(&op.filter, op.created_at)
            .into_iter()
            .filter(|t| t.id > op.cursor)
            .take(limit as usize)
            .map(|t| (t.id, t.task_id))
            .collect();
        let mut retried = Vec::new();
        for (_, task_id) in &picked {
            if let RetryOutcome::Scheduled(task) = self.retry(*task_id, now) {
                retried.push(TaskRef {
                    task_id: task.task_id,
                    run_at: task.run_at,
                });
            }
        }
        let more = picked.len() == limit as usize;
        if let Some(op) = self.operation_mut(id) {
            op.cursor = picked.last().map_or(op.cursor, |(row, _)| *row);
            op.done += retried.len() as u64;
            op.lease_expires_at = Some(lease_until);
            op.updated_at = now;
            if !more {
                finish(op, now);
            }
        }
        RetryBatch { retried, more }
    }
}

/// Completes `op` at `now`: what matched but was not handled counts as skipped.
fn finish(op: &mut Operation, now: DateTime<Utc>) {
    op.status = OperationStatus::Completed;
    op.skipped = op
        .matched
        .saturating_sub(op.done + op.failed)
        .max(op.skipped);
    op.finished_at = Some(now);
    op.lease_owner = None;
    op.lease_expires_at = None;
    op.updated_at = now;
}

#[async_trait]
impl OperationStore for MemoryStore {
    async fn preview(
        &self,
        kind: OperationKind,
        filter: &OperationFilter,
        sample: u32,
        now: DateTime<Utc>,
    ) -> Result<Preview, StoreError> {
        let state = self.lock();
        let sample = sample as usize;
        Ok(match kind {
            OperationKind::RetryTasks => {
                let tasks = state.matching_tasks(filter, now);
                Preview {
                    matched: tasks.len() as u64,
                    task_ids: tasks.iter().take(sample).map(|t| t.task_id).collect(),
                    event_ids: Vec::new(),
                }
            }
            OperationKind::ReprocessEvents => {
                let events: Vec<i64> = state
                    .events
                    .values()
                    .filter(|e| state.event_matches(e, filter, now))
                    .map(|e| e.id)
                    .collect();
                Preview {
                    matched: events.len() as u64,
                    task_ids: Vec::new(),
                    event_ids: events.into_iter().take(sample).collect(),
                }
            }
        })
    }

    async fn create_operation(&self, operation: &Operation) -> Result<(), StoreError> {
        self.lock().operations.push(operation.clone());
        Ok(())
    }

    async fn get_operation(&self, id: Uuid) -> Result<Option<Operation>, StoreError> {
        Ok(self.lock().operations.iter().find(|o| o.id == id).cloned())
    }

    async fn list_operations(
        &self,
        before: Option<Uuid>,
        page: Page,
    ) -> Result<Vec<Operation>, StoreError> {
        let state = self.lock();
        // Kept in insertion order, which is the creation order.
        let end = match before {
            None => state.operations.len(),
            Some(id) => state
                .operations
                .iter()
                .position(|o| o.id == id)
                .unwrap_or(0),
        };
        Ok(state.operations[..end]
            .iter()
            .rev()
            .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
            .take(page.limit as usize)
            .cloned()
            .collect())
    }

    async fn cancel_operation(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<CancelOperation, StoreError> {
        let mut state = self.lock();
        let Some(op) = state.operation_mut(id) else {
            return Ok(CancelOperation::NotFound);
        };
        if op.status.is_finished() {
            return Ok(CancelOperation::Finished(Box::new(op.clone())));
        }
        op.status = OperationStatus::Cancelled;
        op.finished_at = Some(now);
        op.lease_owner = None;
        op.lease_expires_at = None;
        op.updated_at = now;
        Ok(CancelOperation::Cancelled(Box::new(op.clone())))
    }

    async fn claim_operation(
        &self,
        worker: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Operation>, StoreError> {
        let mut state = self.lock();
        let Some(op) = state.operations.iter_mut().find(|o| {
            o.status == OperationStatus::Pending
                || (o.status == OperationStatus::Running
                    && o.lease_expires_at.is_none_or(|t| t <= now))
        }) else {
            return Ok(None);
        };
        op.status = OperationStatus::Running;
        op.lease_owner = Some(worker.to_owned());
        op.lease_expires_at = Some(lease_until);
        op.started_at.get_or_insert(now);
        op.updated_at = now;
        Ok(Some(op.clone()))
    }

    async fn retry_batch(
        &self,
        id: Uuid,
        worker: &str,
        limit: u32,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RetryBatch, StoreError> {
        Ok(self.lock().retry_batch(id, worker, limit, lease_until, now))
    }

    async fn next_events(&self, operation: &Operation, limit: u32) -> Result<Vec<i64>, StoreError> {
        let state = self.lock();
        Ok(state
            .events
            .range(operation.cursor.saturating_add(1)..)
            .map(|(_, e)| e)
            .filter(|e| state.event_matches(e, &operation.filter, operation.created_at))
            .take(limit as usize)
            .map(|e| e.id)
            .collect())
    }

    async fn record_progress(
        &self,
        id: Uuid,
        worker: &str,
        progress: Progress,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let Some(op) = state.held(id, worker) else {
            return Ok(false);
        };
        op.cursor = op.cursor.max(progress.cursor);
        op.done += progress.done;
        op.failed += progress.failed;
        op.skipped += progress.skipped;
        op.lease_expires_at = Some(lease_until);
        op.updated_at = now;
        if progress.finished {
            finish(op, now);
        }
        Ok(true)
    }
}
