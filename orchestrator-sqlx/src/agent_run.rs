//! The agent-run ledger (`agent_runs`, see
//! [`orchestrator_core::store::agent_run`]) on both databases: what they share, and
//! [`AgentRunStore`] for [`SqlStore`]. The statements live in `postgres/agent_run.rs` and
//! `sqlite/agent_run.rs`.
//!
//! An operator's manual retry releases the task's unresolved intents inside the retry's own
//! statement or transaction (`tasks.rs` of each database), so the next attempt creates exactly
//! one new run.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::{StoreError, StoreErrorKind};
use orchestrator_core::store::ExternalRun;
use orchestrator_core::store::agent_run::{
    Admission, AgentRunPolicy, AgentRunRecord, AgentRunState, AgentRunStore, RunIntent,
};
use serde_json::Value;
use uuid::Uuid;

use crate::SqlStore;
use crate::any::both;

/// The key admissions that may conflict serialise on: the intent's pull-request head, or its
/// task when the head is unknown (two attempts of one task always share it).
pub(crate) fn lock_key(intent: &RunIntent) -> String {
    match intent.head() {
        Some((repository, pr, sha)) => format!("agent-run head {repository}#{pr}@{sha}"),
        None => format!("agent-run task {}", intent.task_id),
    }
}

/// A stored ledger state.
pub(crate) fn parse_state(text: &str) -> Result<AgentRunState, StoreError> {
    AgentRunState::parse(text)
        .ok_or_else(|| crate::error::corrupt(format!("agent run state {text:?}")))
}

/// An intent that is unknown or not in a state the change applies to.
pub(crate) fn stale_intent(intent_id: Uuid) -> StoreError {
    StoreError::new(
        StoreErrorKind::Conflict,
        format!("agent-run intent {intent_id} is unknown or not in a state this change applies to"),
    )
}

#[async_trait]
impl AgentRunStore for SqlStore {
    async fn admit(
        &self,
        intent: &RunIntent,
        policy: &AgentRunPolicy,
        now: DateTime<Utc>,
    ) -> Result<Admission, StoreError> {
        both!(self, s => s.admit(intent, policy, now).await)
    }
    async fn record_created(
        &self,
        intent_id: Uuid,
        run: &ExternalRun,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        both!(self, s => s.record_created(intent_id, run, now).await)
    }
    async fn record_not_created(
        &self,
        intent_id: Uuid,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        both!(self, s => s.record_not_created(intent_id, note, now).await)
    }
    async fn mark_unresolved(
        &self,
        intent_id: Uuid,
        note: &str,
        marker: &Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        both!(self, s => s.mark_unresolved(intent_id, note, marker, now).await)
    }
    async fn agent_runs(&self, task_id: Uuid) -> Result<Vec<AgentRunRecord>, StoreError> {
        both!(self, s => s.agent_runs(task_id).await)
    }
}
