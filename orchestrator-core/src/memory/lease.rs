//! The life of an attempt in the in-memory store: claim, lease renewal, finish, lease expiry.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::state::{State, close, conflict, illegal};
use crate::error::StoreError;
use crate::store::{Claim, Finish, FinishReport};
use crate::task::{ExecutionStatus, Task, TaskExecution, TaskStatus, Transition};

impl State {
    /// Claims one task if it is runnable and due.
    pub(super) fn start(
        &mut self,
        task_id: Uuid,
        worker: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<Claim> {
        let task = self.tasks.get_mut(&task_id)?;
        if !task.status.is_runnable() || task.run_at > now {
            return None;
        }
        task.status = task.status.apply(Transition::Claim).ok()?;
        task.attempts = task.attempts.saturating_add(1);
        task.started_at.get_or_insert(now);
        task.lease_owner = Some(worker.to_owned());
        task.lease_expires_at = Some(lease_until);
        task.updated_at = now;
        let claim_task = task.clone();
        let event_id = task.webhook_event_id;

        self.last_execution_id += 1;
        let execution_id = Uuid::now_v7();
        self.executions
            .entry(task_id)
            .or_default()
            .push(TaskExecution {
                id: self.last_execution_id,
                execution_id,
                task_id,
                attempt: claim_task.attempts,
                worker_id: worker.to_owned(),
                status: ExecutionStatus::Running,
                started_at: now,
                completed_at: None,
                duration_ms: None,
                error_message: None,
            });
        if let Some(event) = event_id.and_then(|id| self.events.get_mut(&id))
            && event.processing_started_at.is_none()
        {
            event.processing_started_at = Some(now);
            event.updated_at = now;
        }
        Some(Claim {
            attempt: claim_task.attempts,
            task: claim_task,
            execution_id,
            worker_id: worker.to_owned(),
            lease_expires_at: lease_until,
            receipt: None,
        })
    }

    /// Due runnable tasks in claim order: priority desc, run_at asc, row id asc.
    pub(super) fn due(&self, now: DateTime<Utc>, max: usize) -> Vec<Uuid> {
        let mut due: Vec<&Task> = self
            .tasks
            .values()
            .filter(|t| t.status.is_runnable() && t.run_at <= now)
            .collect();
        due.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.run_at.cmp(&b.run_at))
                .then(a.id.cmp(&b.id))
        });
        due.into_iter().take(max).map(|t| t.task_id).collect()
    }

    /// Whether `claim` still holds its task: running, same lease owner, its execution running.
    fn holds(&self, claim: &Claim) -> bool {
        let task_id = claim.task.task_id;
        self.tasks.get(&task_id).is_some_and(|t| {
            t.status == TaskStatus::Running
                && t.lease_owner.as_deref() == Some(claim.worker_id.as_str())
        }) && self
            .executions
            .get(&task_id)
            .and_then(|list| list.iter().find(|e| e.execution_id == claim.execution_id))
            .is_some_and(|e| e.status == ExecutionStatus::Running)
    }

    pub(super) fn extend(&mut self, claim: &Claim, lease_until: DateTime<Utc>) -> bool {
        if !self.holds(claim) {
            return false;
        }
        if let Some(task) = self.tasks.get_mut(&claim.task.task_id) {
            task.lease_expires_at = Some(lease_until);
        }
        true
    }

    pub(super) fn finish(
        &mut self,
        claim: &Claim,
        finish: Finish,
        now: DateTime<Utc>,
    ) -> Result<FinishReport, StoreError> {
        let task_id = claim.task.task_id;
        if !self.holds(claim) {
            return Err(conflict(format!(
                "task {task_id} is no longer held by execution {} of {}",
                claim.execution_id, claim.worker_id
            )));
        }
        let (transition, exec_status) = match &finish {
            Finish::Completed { followups, .. } => {
                self.check_new_ids(followups)?;
                (Transition::Complete, ExecutionStatus::Completed)
            }
            Finish::Retry { .. } => (Transition::ScheduleRetry, ExecutionStatus::Failed),
            Finish::Failed { .. } => (Transition::Fail, ExecutionStatus::Failed),
            Finish::Deferred { .. } => (Transition::Defer, ExecutionStatus::Deferred),
            Finish::Released => (Transition::Release, ExecutionStatus::Released),
            Finish::Ended { end, .. } => (end.transition(), end.execution()),
        };
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return Err(conflict(format!("task {task_id} vanished")));
        };
        let next = task.status.apply(transition).map_err(illegal)?;
        task.status = next;
        task.lease_owner = None;
        task.lease_expires_at = None;
        task.updated_at = now;
        let mut followups = Vec::new();
        let exec_error = match finish {
            Finish::Completed {
                output,
                followups: new,
            } => {
                task.completed_at = Some(now);
                task.output_data = Some(output);
                task.error_message = None;
                followups = new;
                None
            }
            Finish::Retry { error, at } => {
                task.retry_count = task.retry_count.saturating_add(1);
                task.run_at = at;
                task.error_message = Some(error.clone());
                Some(error)
            }
            Finish::Failed { error } => {
                task.completed_at = Some(now);
                task.error_message = Some(error.clone());
                Some(error)
            }
            Finish::Deferred { at, reason, output } => {
                task.run_at = at;
                if let Some(output) = output {
                    task.output_data = Some(output);
                }
                Some(reason)
            }
            Finish::Released => {
                task.run_at = now;
                None
            }
            Finish::Ended { error, output, .. } => {
                task.completed_at = Some(now);
                task.output_data = Some(output);
                task.error_message = Some(error.clone());
                Some(error)
            }
        };
        let run_at = next.is_runnable().then_some(task.run_at);
        let event_id = task.webhook_event_id;
        if let Some(execution) = self.executions.get_mut(&task_id).and_then(|list| {
            list.iter_mut()
                .find(|e| e.execution_id == claim.execution_id)
        }) {
            close(execution, exec_status, exec_error, now);
        }
        let followups: Vec<Uuid> = followups
            .into_iter()
            .map(|t| self.insert_task(t, event_id, Some(task_id), now))
            .collect();
        self.settle_event(event_id, now);
        Ok(FinishReport {
            status: next,
            run_at,
            followups,
        })
    }

    /// Returns the ids made runnable again (row id order).
    pub(super) fn expire(&mut self, now: DateTime<Utc>) -> Vec<Uuid> {
        let mut expired: Vec<(i64, Uuid)> = self
            .tasks
            .values()
            .filter(|t| {
                t.status == TaskStatus::Running && t.lease_expires_at.is_some_and(|at| at <= now)
            })
            .map(|t| (t.id, t.task_id))
            .collect();
        expired.sort_unstable();
        let mut runnable = Vec::new();
        for (_, task_id) in expired {
            let Some(task) = self.tasks.get_mut(&task_id) else {
                continue;
            };
            let owner = task.lease_owner.take().unwrap_or_default();
            task.lease_expires_at = None;
            task.updated_at = now;
            let message = format!("lease of worker {owner} expired before it reported back");
            if task.retry_count < task.max_retries {
                let Ok(next) = task.status.apply(Transition::LeaseExpired) else {
                    continue;
                };
                task.status = next;
                task.retry_count = task.retry_count.saturating_add(1);
                task.run_at = now;
                runnable.push(task_id);
            } else {
                let Ok(next) = task.status.apply(Transition::Fail) else {
                    continue;
                };
                task.status = next;
                task.completed_at = Some(now);
            }
            task.error_message = Some(message.clone());
            let event_id = task.webhook_event_id;
            if let Some(list) = self.executions.get_mut(&task_id) {
                for execution in list
                    .iter_mut()
                    .filter(|e| e.status == ExecutionStatus::Running)
                {
                    close(
                        execution,
                        ExecutionStatus::Abandoned,
                        Some(message.clone()),
                        now,
                    );
                }
            }
            self.settle_event(event_id, now);
        }
        runnable
    }
}
