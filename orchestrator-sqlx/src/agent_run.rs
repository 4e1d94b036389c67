//! The agent-run ledger (`agent_runs`, see
//! [`orchestrator_core::store::agent_run`]) on both databases: what they share, and
//! [`AgentRunStore`] for [`SqlStore`]. The statements both databases run alike are here; the
//! rest, and the transactions, live in `postgres/agent_run.rs` and `sqlite/agent_run.rs`.
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

/// The columns every ledger read returns, in the order each database's `record` reads them.
macro_rules! run_columns {
    () => {
        "intent_id, task_id, attempt, repository, pr_number, head_sha, forced, state, run_id, \
         web_url, note, created_at, updated_at"
    };
}

/// The task's latest open intent.
pub(crate) const TASK_OPEN: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM agent_runs WHERE task_id = $1 AND state IN ('pending', 'created', 'unresolved') \
     ORDER BY id DESC LIMIT 1"
);

/// The latest open intent of a pull-request head, and how many there are (`open`).
pub(crate) const HEAD_OPEN: &str = concat!(
    "SELECT ",
    run_columns!(),
    ", count(*) OVER () AS open FROM agent_runs \
     WHERE repository = $1 AND pr_number = $2 AND head_sha = $3 \
     AND state IN ('pending', 'created', 'unresolved') ORDER BY id DESC LIMIT 1"
);

/// A new pending intent.
pub(crate) const INSERT: &str = "INSERT INTO agent_runs (intent_id, task_id, attempt, repository, \
    pr_number, head_sha, forced, state, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8)";

/// The run of an intent (from pending, unresolved, or created again with its page).
pub(crate) const CREATED: &str = "UPDATE agent_runs SET state = 'created', run_id = $2, \
    web_url = COALESCE($3, web_url), updated_at = $4 \
    WHERE intent_id = $1 AND state IN ('pending', 'unresolved', 'created') RETURNING task_id";

/// A pending intent the agent answered with a refusal.
pub(crate) const NOT_CREATED: &str = "UPDATE agent_runs SET state = 'not_created', note = $2, \
    updated_at = $3 WHERE intent_id = $1 AND state = 'pending' RETURNING task_id";

/// The created intent of a task's run that ended without success, released by a manual retry.
pub(crate) const RELEASE_ENDED: &str = "UPDATE agent_runs SET state = 'released', note = $3, \
    updated_at = $4 WHERE task_id = $1 AND run_id = $2 AND state = 'created'";

/// Every intent of a task, oldest first.
pub(crate) const BY_TASK: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM agent_runs WHERE task_id = $1 ORDER BY id"
);

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
    async fn release_ended_run(
        &self,
        task_id: Uuid,
        run_id: &str,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        both!(self, s => s.release_ended_run(task_id, run_id, note, now).await)
    }
}
