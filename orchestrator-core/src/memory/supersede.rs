//! Supersede and close for [`MemoryStore`]: the newest head of each pull request, and the
//! rule of [`crate::store::supersede`] applied under the store's one lock.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::state::State;
use crate::error::StoreError;
use crate::store::cancel::CancelOutcome;
use crate::store::supersede::{
    Action, CLOSED_MESSAGE, KnownHead, OpenTask, PrUpdate, PrUpdateOutcome, SupersedeOutcome,
    SupersedeRequest, is_late, plan, plan_closed, superseded_message,
};
use crate::store::{IngestOutcome, NewDelivery};
use crate::task::Task;

impl State {
    /// Ingests `delivery` and, when it is accepted, applies its pull-request updates, all under
    /// the store's one lock (the in-memory store's transaction).
    pub(super) fn ingest_delivery(
        &mut self,
        delivery: NewDelivery,
    ) -> Result<IngestOutcome, StoreError> {
        let now = delivery.event.received_at;
        let mut outcome = self.ingest(delivery.event, delivery.tasks)?;
        if let IngestOutcome::Accepted { pr_updates, .. } = &mut outcome {
            *pr_updates = delivery
                .pr_updates
                .iter()
                .map(|update| self.apply(update, now))
                .collect();
        }
        Ok(outcome)
    }

    /// Applies one pull-request update.
    fn apply(&mut self, update: &PrUpdate, now: DateTime<Utc>) -> PrUpdateOutcome {
        match update {
            PrUpdate::Supersede(request) => {
                PrUpdateOutcome::Superseded(self.supersede(request, now))
            }
            PrUpdate::Close(close) => PrUpdateOutcome::Closed(self.close_pr(
                &close.repository,
                close.pr_number,
                CLOSED_MESSAGE,
                close.running,
                now,
            )),
        }
    }

    /// The open tasks of one pull request, oldest first.
    fn open_of_pr(&self, repository: &str, pr_number: i64) -> Vec<OpenTask> {
        let mut open: Vec<&Task> = self
            .tasks
            .values()
            .filter(|t| {
                !t.status.is_terminal()
                    && t.repository.as_deref() == Some(repository)
                    && t.pr_number == Some(pr_number)
            })
            .collect();
        open.sort_by_key(|t| t.id);
        open.into_iter()
            .map(|t| OpenTask {
                task_id: t.task_id,
                task_type: t.task_type.clone(),
                status: t.status,
                commit_sha: t.commit_sha.clone(),
                has_parent: t.parent_task_id.is_some(),
                has_run: t.codegen_task_id.is_some()
                    || self
                        .agent_runs
                        .iter()
                        .any(|r| r.task_id == t.task_id && r.state.is_open()),
            })
            .collect()
    }

    /// Applies [`plan`] (or, for a late head, cancels the delivery's own new tasks).
    pub(super) fn supersede(
        &mut self,
        request: &SupersedeRequest,
        now: DateTime<Utc>,
    ) -> SupersedeOutcome {
        let head = &request.head;
        let key = (head.repository.clone(), head.pr_number);
        let known = self.pr_heads.get(&key).cloned();
        let mut outcome = SupersedeOutcome::default();
        if is_late(known.as_ref(), head) {
            outcome.late = true;
            let newest = known.map(|k| k.head_sha).unwrap_or_default();
            for (new_id, kind) in &request.new_tasks {
                let by = self
                    .tasks
                    .values()
                    .filter(|t| {
                        t.repository.as_deref() == Some(head.repository.as_str())
                            && t.pr_number == Some(head.pr_number)
                            && t.task_type == *kind
                            && t.commit_sha.as_deref() == Some(newest.as_str())
                    })
                    .max_by_key(|t| t.id)
                    .map(|t| t.task_id);
                if let Some(by) = by {
                    let message = superseded_message(by, &newest);
                    if let CancelOutcome::Cancelled(_) =
                        self.cancel(*new_id, &message, Some(by), now)
                    {
                        outcome.cancelled.push(*new_id);
                    }
                }
            }
            return outcome;
        }
        let newest_at = known
            .filter(|k| k.head_sha == head.head_sha)
            .map_or(head.head_at, |k| k.head_at.max(head.head_at));
        self.pr_heads.insert(
            key,
            KnownHead {
                head_sha: head.head_sha.clone(),
                head_at: newest_at,
            },
        );
        let open = self.open_of_pr(&head.repository, head.pr_number);
        for (task_id, action) in plan(request, &open) {
            match action {
                Action::Cancel { by } => {
                    let message = superseded_message(by, &head.head_sha);
                    if let CancelOutcome::Cancelled(_) =
                        self.cancel(task_id, &message, Some(by), now)
                    {
                        outcome.cancelled.push(task_id);
                    }
                }
                Action::Mark { by } => {
                    if let Some(task) = self.tasks.get_mut(&task_id) {
                        task.superseded_by = Some(by);
                        task.updated_at = now;
                        outcome.marked.push(task_id);
                    }
                }
            }
        }
        outcome
    }

    /// Cancels the open work of a closed pull request (see [`plan_closed`]).
    pub(super) fn close_pr(
        &mut self,
        repository: &str,
        pr_number: i64,
        message: &str,
        running: bool,
        now: DateTime<Utc>,
    ) -> Vec<Uuid> {
        let open = self.open_of_pr(repository, pr_number);
        plan_closed(&open, running)
            .into_iter()
            .filter(|id| {
                matches!(
                    self.cancel(*id, message, None, now),
                    CancelOutcome::Cancelled(_)
                )
            })
            .collect()
    }
}
