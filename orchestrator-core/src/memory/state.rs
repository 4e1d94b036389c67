//! The rows of the in-memory store and the changes outside an attempt: ingest, reprocess,
//! manual retry, external runs, deletion. `lease.rs` holds the attempt's life cycle.
//!
//! Every public operation of [`MemoryStore`](super::MemoryStore) takes the one lock, validates
//! everything it is going to write, then writes: that is its transaction. The SQL adapters do
//! the same steps inside a database transaction.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{StoreError, StoreErrorKind};
use crate::event::{NewEvent, WebhookEvent};
use crate::store::agent_run::AgentRunRecord;
use crate::store::{IngestOutcome, ReprocessOutcome, RetryOutcome};
use crate::task::{ExecutionStatus, NewTask, Task, TaskExecution, TaskStatus, Transition};

/// All rows. Ids count from 1, like database sequences.
#[derive(Debug, Default)]
pub(super) struct State {
    last_event_id: i64,
    last_task_id: i64,
    pub(super) last_execution_id: i64,
    pub(super) events: BTreeMap<i64, WebhookEvent>,
    pub(super) deliveries: HashMap<String, i64>,
    pub(super) tasks: HashMap<Uuid, Task>,
    /// Task ids per event, in insertion (row id) order.
    pub(super) event_tasks: HashMap<i64, Vec<Uuid>>,
    /// Executions per task, oldest first.
    pub(super) executions: HashMap<Uuid, Vec<TaskExecution>>,
    /// The agent-run ledger, oldest first (see `agent_run.rs`).
    pub(super) agent_runs: Vec<AgentRunRecord>,
    /// Bulk operations, oldest first (see `operation.rs`).
    pub(super) operations: Vec<crate::store::operation::Operation>,
    /// Operators' pauses, oldest first (see `pause.rs`); claims skip the tasks they cover.
    pub(super) pauses: Vec<crate::store::pause::Pause>,
    /// Recovery runs and the runner lease (see `recovery.rs`).
    pub(super) recovery: super::recovery::RecoveryState,
    /// The reporter's cursors, leases and records (see `report_store.rs`).
    pub(super) reporting: super::report_store::Reporting,
    /// The newest head of each pull request (repository, number), see `supersede.rs`.
    pub(super) pr_heads: HashMap<(String, i64), crate::store::supersede::KnownHead>,
}

pub(super) fn conflict(message: String) -> StoreError {
    StoreError::new(StoreErrorKind::Conflict, message)
}

pub(super) fn illegal(err: crate::task::IllegalTransition) -> StoreError {
    StoreError::with_source(StoreErrorKind::Conflict, err.to_string(), err)
}

/// Ends an execution at `now` with `status`.
pub(super) fn close(
    execution: &mut TaskExecution,
    status: ExecutionStatus,
    error: Option<String>,
    now: DateTime<Utc>,
) {
    execution.status = status;
    execution.completed_at = Some(now);
    execution.duration_ms = Some((now - execution.started_at).num_milliseconds().max(0));
    execution.error_message = error;
}

impl State {
    /// Refuses a batch whose task ids are already stored or repeated.
    pub(super) fn check_new_ids(&self, tasks: &[NewTask]) -> Result<(), StoreError> {
        let mut seen = HashSet::new();
        for task in tasks {
            if self.tasks.contains_key(&task.task_id) || !seen.insert(task.task_id) {
                return Err(conflict(format!("task {} already exists", task.task_id)));
            }
        }
        Ok(())
    }

    /// Inserts a pending task. `parent` overrides the task's own parent link when given.
    pub(super) fn insert_task(
        &mut self,
        new: NewTask,
        event_id: Option<i64>,
        parent: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Uuid {
        self.last_task_id += 1;
        let spec = new.spec;
        let task = Task {
            id: self.last_task_id,
            task_id: new.task_id,
            webhook_event_id: event_id,
            parent_task_id: parent.or(new.parent_task_id),
            task_type: spec.task_type,
            status: TaskStatus::Pending,
            priority: spec.priority,
            repository: spec.repository,
            pr_number: spec.pr_number,
            branch: spec.branch,
            commit_sha: spec.commit_sha,
            config: spec.config,
            input_data: spec.input_data,
            output_data: None,
            started_at: None,
            completed_at: None,
            error_message: None,
            retry_count: 0,
            max_retries: new.max_retries,
            attempts: 0,
            codegen_task_id: None,
            codegen_task_url: None,
            run_at: new.run_at,
            lease_owner: None,
            lease_expires_at: None,
            trace_context: new.trace_context,
            created_at: now,
            updated_at: now,
            superseded_by: None,
        };
        if let Some(event_id) = event_id {
            self.event_tasks
                .entry(event_id)
                .or_default()
                .push(task.task_id);
        }
        let id = task.task_id;
        self.tasks.insert(id, task);
        id
    }

    pub(super) fn ingest(
        &mut self,
        event: NewEvent,
        tasks: Vec<NewTask>,
    ) -> Result<IngestOutcome, StoreError> {
        if let Some(&event_id) = self.deliveries.get(&event.delivery_id) {
            return Ok(IngestOutcome::Duplicate { event_id });
        }
        self.check_new_ids(&tasks)?;
        self.last_event_id += 1;
        let id = self.last_event_id;
        let at = event.received_at;
        // An event stored unparsed stays unprocessed (with its parse error as its error) until a
        // reprocess parses it.
        let processed = tasks.is_empty() && event.parse_error.is_none();
        self.deliveries.insert(event.delivery_id.clone(), id);
        self.events.insert(
            id,
            WebhookEvent {
                id,
                delivery_id: event.delivery_id,
                event_type: event.event_type,
                action: event.action,
                source: event.source,
                repository: event.repository,
                installation_id: event.installation_id,
                payload: event.payload,
                headers: event.headers,
                processed,
                processing_started_at: processed.then_some(at),
                processing_completed_at: processed.then_some(at),
                error_message: event.parse_error.as_deref().map(NewEvent::unparsed_message),
                parse_error: event.parse_error,
                retry_count: 0,
                created_at: at,
                updated_at: at,
            },
        );
        let task_ids = tasks
            .into_iter()
            .map(|t| self.insert_task(t, Some(id), None, at))
            .collect();
        Ok(IngestOutcome::Accepted {
            event_id: id,
            task_ids,
            pr_updates: Vec::new(),
        })
    }

    pub(super) fn reprocess(
        &mut self,
        id: i64,
        tasks: Vec<NewTask>,
        now: DateTime<Utc>,
    ) -> Result<ReprocessOutcome, StoreError> {
        if !self.events.contains_key(&id) {
            return Ok(ReprocessOutcome::NotFound);
        }
        let open_tasks = self.open_tasks(id);
        if !open_tasks.is_empty() {
            return Ok(ReprocessOutcome::Busy {
                event_id: id,
                open_tasks,
            });
        }
        self.check_new_ids(&tasks)?;
        let task_ids: Vec<Uuid> = tasks
            .into_iter()
            .map(|t| self.insert_task(t, Some(id), None, now))
            .collect();
        let settled = self.all_terminal(id);
        if let Some(event) = self.events.get_mut(&id) {
            event.processed = settled;
            event.processing_completed_at = settled.then_some(now);
            event.error_message = None;
            event.parse_error = None;
            event.retry_count = event.retry_count.saturating_add(1);
            event.updated_at = now;
        }
        Ok(ReprocessOutcome::Reprocessed {
            event_id: id,
            task_ids,
        })
    }

    /// The event's tasks that are not terminal, by row id.
    fn open_tasks(&self, event_id: i64) -> Vec<Uuid> {
        let mut open: Vec<(i64, Uuid)> = self
            .event_tasks
            .get(&event_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.tasks.get(id))
            .filter(|t| !t.status.is_terminal())
            .map(|t| (t.id, t.task_id))
            .collect();
        open.sort_unstable();
        open.into_iter().map(|(_, id)| id).collect()
    }

    fn all_terminal(&self, event_id: i64) -> bool {
        self.event_tasks.get(&event_id).is_none_or(|ids| {
            ids.iter()
                .filter_map(|id| self.tasks.get(id))
                .all(|t| t.status.is_terminal())
        })
    }

    /// Marks the event processed when all its tasks are terminal; its error is the first failed
    /// task's error (by task row id).
    pub(super) fn settle_event(&mut self, event_id: Option<i64>, now: DateTime<Utc>) {
        let Some(event_id) = event_id else { return };
        if !self.all_terminal(event_id) {
            return;
        }
        let error = self.event_tasks.get(&event_id).and_then(|ids| {
            ids.iter()
                .filter_map(|id| self.tasks.get(id))
                .find(|t| t.status == TaskStatus::Failed)
                .map(|t| {
                    t.error_message
                        .clone()
                        .unwrap_or_else(|| "task failed".to_owned())
                })
        });
        if let Some(event) = self.events.get_mut(&event_id) {
            event.processed = true;
            event.processing_completed_at = Some(now);
            event.error_message = error;
            event.updated_at = now;
        }
    }

    pub(super) fn retry(&mut self, task_id: Uuid, now: DateTime<Utc>) -> RetryOutcome {
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return RetryOutcome::NotFound;
        };
        let next = match task.status.apply(Transition::ManualRetry) {
            Ok(next) => next,
            Err(err) => return RetryOutcome::NotRetryable(err.from),
        };
        task.status = next;
        task.run_at = now;
        task.retry_count = 0;
        // Same "transaction": the operator decided, so unresolved intents no longer block.
        super::agent_run::release_unresolved(&mut self.agent_runs, task_id, now);
        task.completed_at = None;
        task.error_message = None;
        task.lease_owner = None;
        task.lease_expires_at = None;
        task.updated_at = now;
        let task = task.clone();
        if let Some(event) = task
            .webhook_event_id
            .and_then(|id| self.events.get_mut(&id))
        {
            event.processed = false;
            event.processing_completed_at = None;
            event.updated_at = now;
        }
        RetryOutcome::Scheduled(Box::new(task))
    }

    pub(super) fn record_run(
        &mut self,
        task_id: Uuid,
        id: &str,
        url: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return Err(StoreError::new(
                StoreErrorKind::Internal,
                format!("no task {task_id}"),
            ));
        };
        let parent = task.parent_task_id;
        for target in std::iter::once(task_id).chain(parent) {
            if let Some(task) = self.tasks.get_mut(&target) {
                task.codegen_task_id = Some(id.to_owned());
                task.codegen_task_url = url.map(str::to_owned);
                task.updated_at = now;
            }
        }
        Ok(())
    }

    /// Removes a task and its executions; how many executions went with it.
    pub(super) fn delete_task(&mut self, task_id: Uuid) -> u64 {
        if let Some(task) = self.tasks.remove(&task_id)
            && let Some(ids) = task
                .webhook_event_id
                .and_then(|id| self.event_tasks.get_mut(&id))
        {
            ids.retain(|id| *id != task_id);
        }
        self.executions
            .remove(&task_id)
            .map_or(0, |list| list.len() as u64)
    }

    /// Removes an event (its tasks must be removed by the caller first).
    pub(super) fn delete_event(&mut self, event_id: i64) {
        if let Some(event) = self.events.remove(&event_id) {
            self.deliveries.remove(&event.delivery_id);
        }
        self.event_tasks.remove(&event_id);
    }
}
