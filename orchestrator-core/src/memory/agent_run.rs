//! [`AgentRunStore`] for [`MemoryStore`]: the agent-run ledger as a list of records in the one
//! locked state, so every call is one transaction (admission included: the check and the insert
//! happen under the same lock).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::MemoryStore;
use super::state::conflict;
use crate::error::StoreError;
use crate::store::ExternalRun;
use crate::store::agent_run::{
    Admission, AgentRunPolicy, AgentRunRecord, AgentRunState, AgentRunStore, HeadRuns, RunIntent,
    Verdict, decide,
};

/// Releases the unresolved intents of `task_id` (an operator retried it).
pub(super) fn release_unresolved(runs: &mut [AgentRunRecord], task_id: Uuid, now: DateTime<Utc>) {
    for run in runs
        .iter_mut()
        .filter(|r| r.task_id == task_id && r.state == AgentRunState::Unresolved)
    {
        run.state = AgentRunState::Released;
        run.updated_at = now;
    }
}

/// The open intents of the head `intent` is for.
fn head_runs(runs: &[AgentRunRecord], intent: &RunIntent) -> HeadRuns {
    let Some((repository, pr, sha)) = intent.head() else {
        return HeadRuns::default();
    };
    let open: Vec<&AgentRunRecord> = runs
        .iter()
        .filter(|r| {
            r.state.is_open()
                && r.repository.as_deref() == Some(repository)
                && r.pr_number == Some(pr)
                && r.head_sha.as_deref() == Some(sha)
        })
        .collect();
    HeadRuns {
        open: open.len() as u64,
        latest: open.last().map(|r| (*r).clone()),
    }
}

/// Changes the record of `intent_id` if its state is one of `from`.
fn update(
    runs: &mut [AgentRunRecord],
    intent_id: Uuid,
    from: &[AgentRunState],
    change: impl FnOnce(&mut AgentRunRecord),
) -> Result<(), StoreError> {
    let Some(run) = runs.iter_mut().find(|r| r.intent_id == intent_id) else {
        return Err(conflict(format!("no agent-run intent {intent_id}")));
    };
    if !from.contains(&run.state) {
        return Err(conflict(format!(
            "agent-run intent {intent_id} is {}",
            run.state.as_str()
        )));
    }
    change(run);
    Ok(())
}

#[async_trait]
impl AgentRunStore for MemoryStore {
    async fn admit(
        &self,
        intent: &RunIntent,
        policy: &AgentRunPolicy,
        now: DateTime<Utc>,
    ) -> Result<Admission, StoreError> {
        let mut state = self.lock();
        let task_open = state
            .agent_runs
            .iter()
            .rev()
            .find(|r| r.task_id == intent.task_id && r.state.is_open())
            .cloned();
        let head = head_runs(&state.agent_runs, intent);
        Ok(match decide(task_open, head, intent, policy) {
            Verdict::Resume(open) => Admission::Resume(open),
            Verdict::Refuse(refusal) => Admission::Refused(refusal),
            Verdict::Admit => {
                let record = AgentRunRecord::pending(intent, now);
                state.agent_runs.push(record.clone());
                Admission::Admitted(record)
            }
        })
    }

    async fn record_created(
        &self,
        intent_id: Uuid,
        run: &ExternalRun,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let open = [
            AgentRunState::Pending,
            AgentRunState::Unresolved,
            AgentRunState::Created,
        ];
        update(&mut self.lock().agent_runs, intent_id, &open, |r| {
            r.state = AgentRunState::Created;
            r.run_id = Some(run.id.clone());
            r.web_url = run.url.clone().or_else(|| r.web_url.take());
            r.updated_at = now;
        })
    }

    async fn record_not_created(
        &self,
        intent_id: Uuid,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        update(
            &mut self.lock().agent_runs,
            intent_id,
            &[AgentRunState::Pending],
            |r| {
                r.state = AgentRunState::NotCreated;
                r.note = Some(note.to_owned());
                r.updated_at = now;
            },
        )
    }

    async fn mark_unresolved(
        &self,
        intent_id: Uuid,
        note: &str,
        marker: &Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let task_id = state
            .agent_runs
            .iter()
            .find(|r| r.intent_id == intent_id)
            .map(|r| r.task_id);
        let open = [AgentRunState::Pending, AgentRunState::Unresolved];
        update(&mut state.agent_runs, intent_id, &open, |r| {
            r.state = AgentRunState::Unresolved;
            r.note = Some(note.to_owned());
            r.updated_at = now;
        })?;
        if let Some(task) = task_id.and_then(|id| state.tasks.get_mut(&id)) {
            task.output_data = Some(marker.clone());
            task.updated_at = now;
        }
        Ok(())
    }

    async fn agent_runs(&self, task_id: Uuid) -> Result<Vec<AgentRunRecord>, StoreError> {
        Ok(self
            .lock()
            .agent_runs
            .iter()
            .filter(|r| r.task_id == task_id)
            .cloned()
            .collect())
    }

    async fn release_ended_run(
        &self,
        task_id: Uuid,
        run_id: &str,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let mut released = false;
        for run in state.agent_runs.iter_mut().filter(|r| {
            r.task_id == task_id
                && r.state == AgentRunState::Created
                && r.run_id.as_deref() == Some(run_id)
        }) {
            run.state = AgentRunState::Released;
            run.note = Some(note.to_owned());
            run.updated_at = now;
            released = true;
        }
        Ok(released)
    }
}
