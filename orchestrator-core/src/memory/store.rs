//! [`MemoryStore`]: the reference store behind one mutex, and its [`EventStore`] and
//! [`TaskStore`] implementations, and a [`BatchStore`] (its `AttemptStore` is in `attempt.rs`).

use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::state::State;
use crate::error::StoreError;
use crate::event::{EventSummary, NewEvent, WebhookEvent};
use crate::store::{
    BatchDelivery, BatchStore, CleanupReport, EventFilter, EventStore, IngestOutcome, NewDelivery,
    Page, ReprocessOutcome, RetentionPolicy, RetryOutcome, Stats, TaskFilter, TaskStore,
};
use crate::task::{NewTask, Task, TaskDetail};

/// Events, tasks and executions in memory: an [`EventStore`], a [`TaskStore`], an
/// [`AttemptStore`](crate::store::AttemptStore) (so [`StoreQueue`](crate::queue::StoreQueue)
/// makes its task table a queue, like the database queue) and an agent-run ledger. Every method takes one lock, so
/// each call is atomic. Ids count from 1. Nothing survives the process.
///
/// # Semantics (mirrored by every other store)
/// - **ingest**: a stored delivery id -> `Duplicate { event_id }`, nothing written; a task id
///   that exists (or repeats in the batch) -> `Conflict`, nothing written. Otherwise the event
///   (`created_at = updated_at = received_at`) and its tasks (pending, `webhook_event_id` set,
///   `created_at = received_at`, `attempts = retry_count = 0`). With no tasks the event is stored
///   `processed = true` with `processing_started_at = processing_completed_at = received_at` --
///   unless it has a `parse_error` (stored unparsed, never with tasks): then it is stored
///   `processed = false`, no processing times, `parse_error` kept and `error_message =
///   NewEvent::unparsed_message(parse_error)`. Then, for an accepted delivery only, its
///   pull-request updates in order under the same lock (`supersede.rs`), times = `received_at`.
/// - **claim_due / start_attempt**: only a runnable (`pending | retrying`) task with
///   `run_at <= now`. It becomes running (through [`TaskStatus::apply`](crate::task::TaskStatus::apply)),
///   `lease_owner = worker`, `lease_expires_at = lease_until`, `attempts += 1`, `started_at` set on
///   the first attempt only, `updated_at = now`; an execution row (status running,
///   `attempt = attempts`, `started_at = now`) is added; the event's `processing_started_at` is set
///   if it was null. `claim_due` orders by priority desc, `run_at` asc, row id asc.
/// - **finish_attempt**: `Conflict` unless the task is running, `lease_owner` is the claim's
///   worker and the claim's execution is still running (the lease time itself is not checked:
///   a late worker keeps its task until `expire_leases` takes it away). Lease fields are cleared,
///   `updated_at = now`, the execution gets `completed_at = now` and `duration_ms`.
///   - `Completed`: completed, `completed_at = now`, `output_data = output`, `error_message`
///     cleared; execution completed; follow-ups inserted pending with the parent's
///     `webhook_event_id`, `parent_task_id` = this task, `created_at = now`.
///   - `Retry`: retrying, `retry_count += 1`, `run_at = at`, `error_message = error`; execution
///     failed with the error.
///   - `Failed`: failed, `completed_at = now`, `error_message = error`; execution failed.
///   - `Deferred`: pending, `run_at = at`, `output_data` replaced only when `Some`,
///     `retry_count` unchanged; execution `deferred` with `error_message = reason`.
///   - `Released`: pending, `run_at = now`; execution `released`.
///
///   When every task of the event is then terminal, the event becomes `processed = true`,
///   `processing_completed_at = now`, `error_message` = the first failed task's error (by row
///   id; `None` if none failed).
/// - **extend_lease**: same holding test as finish; sets `lease_expires_at` only.
/// - **expire_leases**: running tasks with `lease_expires_at <= now`, by row id: the running
///   execution becomes `abandoned` (error "lease of worker W expired ..."); the task becomes
///   retrying with `retry_count += 1`, `run_at = now` if `retry_count < max_retries`, else failed
///   with `completed_at = now`; `error_message` set, lease cleared, event settled as above.
///   Returns the ids made runnable.
/// - **retry_task**: unknown -> `NotFound`; not failed/cancelled -> `NotRetryable(status)`;
///   else pending, `run_at = now`, `retry_count = 0`, `completed_at` and `error_message`
///   cleared (attempts, output and agent run kept); the event becomes `processed = false`,
///   `processing_completed_at = null` (its `error_message` is kept until it settles again); the
///   task's `unresolved` agent-run intents become `released`.
/// - **reprocess_event**: unknown -> `NotFound`; an event with a non-terminal task -> `Busy`
///   naming them (by row id), nothing written; else the tasks are inserted (`created_at = now`);
///   the event's `error_message` and `parse_error` cleared, `retry_count += 1`, and
///   `processed = false`, `processing_completed_at = null` -- unless no task was given, then it
///   is `processed = true` with `processing_completed_at = now`.
/// - **agent runs** (`AgentRunStore`): `admit` resumes the task's latest open intent, else
///   applies `store::agent_run::decide` to the open intents of the same repository, PR and head
///   SHA and appends a pending record (`created_at = now`); `record_created` from pending,
///   unresolved or created; `record_not_created` from pending; `mark_unresolved` from pending or
///   unresolved, setting the task's `output_data` to the marker; other states -> `Conflict`.
/// - **record_external_run**: sets `codegen_task_id` / `codegen_task_url` (the url may be
///   null) on the task and on its parent; unknown task -> `Internal`.
/// - **stats**: 24-hour windows are `created_at >= now - 24h`; `failed_webhooks_24h` counts
///   those events with an `error_message`, `failed_tasks_24h` those tasks in status failed;
///   `avg_processing_time_ms` is the mean `duration_ms` of executions that have one.
/// - **cleanup**: first events with `processed = true`,
///   `coalesce(processing_completed_at, created_at) < now - processed_events` and no
///   non-terminal task, with all their tasks and executions; then terminal tasks with
///   `coalesce(completed_at, updated_at) < now - finished_tasks`, with their executions.
///   Follow-ups keep a `parent_task_id` that may no longer exist.
/// - **lists**: filters AND-ed, `created_at` desc then id desc, then offset/limit.
/// - **stale_runnable**: runnable, `run_at <= now`, `updated_at < stale_before`, `updated_at`
///   asc then row id, at most `limit`.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn ingest_delivery(&self, delivery: NewDelivery) -> Result<IngestOutcome, StoreError> {
        self.lock().ingest_delivery(delivery)
    }

    async fn list_events(
        &self,
        filter: &EventFilter,
        page: Page,
    ) -> Result<Vec<EventSummary>, StoreError> {
        Ok(self.lock().list_events(filter, page))
    }

    async fn get_event(&self, id: i64) -> Result<Option<WebhookEvent>, StoreError> {
        Ok(self.lock().events.get(&id).cloned())
    }

    async fn reprocess_event(
        &self,
        id: i64,
        tasks: Vec<NewTask>,
        now: DateTime<Utc>,
    ) -> Result<ReprocessOutcome, StoreError> {
        self.lock().reprocess(id, tasks, now)
    }
}

/// Nothing to prepare; a batch is ingested one delivery at a time (each under the lock), so
/// [`GroupCommit`](crate::engine::GroupCommit) can sit in front of the in-memory store too.
#[async_trait]
impl BatchStore for MemoryStore {
    type Prepared = ();

    fn prepare(&self, _event: &NewEvent) {}

    async fn ingest_batch(
        &self,
        batch: Vec<BatchDelivery<()>>,
    ) -> Vec<Result<IngestOutcome, StoreError>> {
        batch
            .into_iter()
            .map(|(delivery, ())| self.lock().ingest_delivery(delivery))
            .collect()
    }
}

#[async_trait]
impl TaskStore for MemoryStore {
    async fn list_tasks(&self, filter: &TaskFilter, page: Page) -> Result<Vec<Task>, StoreError> {
        Ok(self.lock().list_tasks(filter, page))
    }

    async fn get_task(&self, task_id: Uuid) -> Result<Option<TaskDetail>, StoreError> {
        let state = self.lock();
        Ok(state.tasks.get(&task_id).map(|task| TaskDetail {
            task: task.clone(),
            executions: state.executions.get(&task_id).cloned().unwrap_or_default(),
        }))
    }

    async fn retry_task(
        &self,
        task_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<RetryOutcome, StoreError> {
        Ok(self.lock().retry(task_id, now))
    }

    async fn stats(&self, now: DateTime<Utc>) -> Result<Stats, StoreError> {
        Ok(self.lock().stats(now))
    }

    async fn cleanup(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
    ) -> Result<CleanupReport, StoreError> {
        Ok(self.lock().cleanup(policy, now))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
