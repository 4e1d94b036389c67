//! The agent-run ledger: a durable record of every coding-agent run creation, written *before*
//! the request is sent, so that a run is created at most once even when a worker dies mid-call.
//!
//! # The protocol (the `codegen_trigger` handler drives it)
//! 1. [`AgentRunStore::admit`], one transaction: if the task already has an open intent
//!    (pending, created or unresolved) it is handed back ([`Admission::Resume`]); otherwise the
//!    [`AgentRunPolicy`] is applied (at most `max_runs_per_head` runs per pull-request head SHA,
//!    unless the intent is forced) and a new `pending` intent is committed
//!    ([`Admission::Admitted`]) or refused ([`Admission::Refused`]).
//! 2. The run is requested with the task id and the intent id in its `metadata`.
//! 3. The answer is recorded: [`record_created`](AgentRunStore::record_created) (run id and
//!    page), or [`record_not_created`](AgentRunStore::record_not_created) when the agent
//!    answered that it created nothing. A lost answer leaves the intent `pending`.
//! 4. A later attempt that gets a `pending` intent back looks for the run by its metadata. Found:
//!    it is recorded and followed. Not found with certainty: the intent becomes `unresolved`
//!    ([`mark_unresolved`](AgentRunStore::mark_unresolved)) and the task stops for a person.
//!    It never creates a run blindly.
//! 5. An operator's manual retry of the task (`TaskStore::retry_task`) releases its unresolved
//!    intents in the same transaction, so the next attempt creates exactly one new run.
//! 6. A run that ended without success (the agent reported a failure status, or a person
//!    stopped it) ends its task `failed` / `cancelled` and its intent stays `created` (it still
//!    counts for its head). When an operator retries the task, its next attempt releases that
//!    intent ([`release_ended_run`](AgentRunStore::release_ended_run)) and asks for exactly one
//!    new run.
//!
//! # For budgets (issue 13) and reporting (issue 17)
//! The per-head-SHA rule is decided by [`decide`] over what the store read inside the admission
//! transaction; further budgets (a global rate, runs per repository per hour) belong in
//! [`AgentRunPolicy`] and [`decide`] (with a new [`Admission`] variant for "wait"), not in a
//! second check elsewhere. Every creation attempt is one row, readable with
//! [`AgentRunStore::agent_runs`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::StoreError;
use crate::store::ExternalRun;

/// The task `config` key that overrides the per-head-SHA limit (`"force": true`). Reprocess
/// with `?force=true` sets it on the tasks it creates; analyses pass it on to their
/// `codegen_trigger` follow-ups.
pub const FORCE_CONFIG_KEY: &str = "force";

/// Whether a task `config` asks to override the per-head-SHA limit.
pub fn is_forced(config: &Value) -> bool {
    config
        .get(FORCE_CONFIG_KEY)
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Where one creation attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentRunState {
    /// The intent is committed; the request may or may not have reached the agent.
    Pending,
    /// The agent created the run; its id is recorded.
    Created,
    /// The agent answered that it created nothing (refused, or never reached). Closed.
    NotCreated,
    /// No run could be found for a pending intent; the task waits for a person.
    Unresolved,
    /// An operator retried the task of an unresolved intent, or of a run that ended without
    /// success: it no longer blocks. Closed.
    Released,
}

impl AgentRunState {
    /// Every state.
    pub const ALL: [AgentRunState; 5] = [
        AgentRunState::Pending,
        AgentRunState::Created,
        AgentRunState::NotCreated,
        AgentRunState::Unresolved,
        AgentRunState::Released,
    ];

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            AgentRunState::Pending => "pending",
            AgentRunState::Created => "created",
            AgentRunState::NotCreated => "not_created",
            AgentRunState::Unresolved => "unresolved",
            AgentRunState::Released => "released",
        }
    }

    /// The state a stored name names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Pending, created or unresolved: a run exists or may exist. Open intents block a second
    /// creation for their task and count against the per-head-SHA limit.
    pub const fn is_open(self) -> bool {
        matches!(
            self,
            AgentRunState::Pending | AgentRunState::Created | AgentRunState::Unresolved
        )
    }
}

/// What the handler asks to record before it sends a run creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunIntent {
    /// The `codegen_trigger` task.
    pub task_id: Uuid,
    /// Its attempt number.
    pub attempt: u32,
    /// `owner/name`.
    pub repository: Option<String>,
    /// The pull request.
    pub pr_number: Option<i64>,
    /// The pull request's head commit the run is for.
    pub head_sha: Option<String>,
    /// Asked explicitly (`?force=true` on reprocess): the per-head-SHA limit does not apply.
    pub force: bool,
}

impl RunIntent {
    /// The pull-request head this intent is for, when all three facts are known.
    pub fn head(&self) -> Option<(&str, i64, &str)> {
        Some((
            self.repository.as_deref()?,
            self.pr_number?,
            self.head_sha.as_deref()?,
        ))
    }
}

/// One row of the ledger: one creation attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRunRecord {
    /// The intent's id, also sent in the run's `metadata` (`agent_run_intent`).
    pub intent_id: Uuid,
    /// The task that asked.
    pub task_id: Uuid,
    /// Its attempt number when the intent was stored.
    pub attempt: u32,
    /// `owner/name`.
    pub repository: Option<String>,
    /// The pull request.
    pub pr_number: Option<i64>,
    /// The head commit.
    pub head_sha: Option<String>,
    /// Whether the per-head-SHA limit was overridden.
    pub forced: bool,
    /// Where it stands.
    pub state: AgentRunState,
    /// The agent's run id, once known.
    pub run_id: Option<String>,
    /// The agent's page for the run, once known.
    pub web_url: Option<String>,
    /// Why it ended as it did (the agent's refusal, what reconciliation found).
    pub note: Option<String>,
    /// When the intent was stored (before the request was sent).
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl AgentRunRecord {
    /// A new pending record for `intent` at `now`.
    pub fn pending(intent: &RunIntent, now: DateTime<Utc>) -> Self {
        Self {
            intent_id: Uuid::now_v7(),
            task_id: intent.task_id,
            attempt: intent.attempt,
            repository: intent.repository.clone(),
            pr_number: intent.pr_number,
            head_sha: intent.head_sha.clone(),
            forced: intent.force,
            state: AgentRunState::Pending,
            run_id: None,
            web_url: None,
            note: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// The rules of run creation. Issue 13's budgets extend this struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentRunPolicy {
    /// At most this many runs per pull-request head SHA (open intents count); `None` for no
    /// limit. Forced intents are admitted regardless (and still count).
    pub max_runs_per_head: Option<u32>,
}

impl Default for AgentRunPolicy {
    fn default() -> Self {
        Self {
            max_runs_per_head: Some(1),
        }
    }
}

/// Why [`AgentRunStore::admit`] stored no intent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The pull request's head SHA already has as many runs as the policy allows.
    HeadHasRun {
        /// The limit.
        limit: u32,
        /// The latest open intent of that head.
        existing: Box<AgentRunRecord>,
    },
}

/// What [`AgentRunStore::admit`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Admission {
    /// A new pending intent is committed: send the request now.
    Admitted(AgentRunRecord),
    /// The task already has this open intent: follow its run, or reconcile it; never send.
    Resume(AgentRunRecord),
    /// Nothing stored: the policy refuses a run.
    Refused(Refusal),
}

/// What the store read inside the admission transaction about the intent's pull-request head.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadRuns {
    /// Open intents of that head.
    pub open: u64,
    /// The latest of them.
    pub latest: Option<AgentRunRecord>,
}

/// What an admission does, given the task's latest open intent and the head's open intents. Every
/// store calls this inside its admission transaction, so the rule lives in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Hand back the task's open intent.
    Resume(AgentRunRecord),
    /// Store a new pending intent.
    Admit,
    /// Store nothing.
    Refuse(Refusal),
}

/// The admission rule: a task's open intent is always resumed; otherwise a forced intent, or a
/// head under its limit (or no known head), is admitted.
pub fn decide(
    task_open: Option<AgentRunRecord>,
    head: HeadRuns,
    intent: &RunIntent,
    policy: &AgentRunPolicy,
) -> Verdict {
    if let Some(open) = task_open {
        return Verdict::Resume(open);
    }
    if intent.force || intent.head().is_none() {
        return Verdict::Admit;
    }
    match (policy.max_runs_per_head, head.latest) {
        (Some(limit), Some(existing)) if head.open >= u64::from(limit) => {
            Verdict::Refuse(Refusal::HeadHasRun {
                limit,
                existing: Box::new(existing),
            })
        }
        _ => Verdict::Admit,
    }
}

/// The agent-run ledger (see the module documentation for the protocol).
#[async_trait]
pub trait AgentRunStore: Send + Sync + 'static {
    /// In one transaction, serialised with every other admission of the same task and head:
    /// the task's latest open intent ([`Admission::Resume`]), or the policy's verdict on a new
    /// one, stored `pending` with `created_at = now` when admitted.
    async fn admit(
        &self,
        intent: &RunIntent,
        policy: &AgentRunPolicy,
        now: DateTime<Utc>,
    ) -> Result<Admission, StoreError>;

    /// The agent created `run` for the intent (answered, or found by reconciliation): `created`
    /// with its id and page. Unknown intents and closed intents are a `Conflict`.
    async fn record_created(
        &self,
        intent_id: Uuid,
        run: &ExternalRun,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The agent answered that it created nothing: a pending intent becomes `not_created` with
    /// `note`. Anything else is a `Conflict`.
    async fn record_not_created(
        &self,
        intent_id: Uuid,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// No run could be found for a pending (or unresolved) intent: it becomes `unresolved` with
    /// `note`, and its task's `output_data` becomes `marker`, in one transaction, so the task
    /// shows why it stopped even if the worker dies before recording the failure.
    async fn mark_unresolved(
        &self,
        intent_id: Uuid,
        note: &str,
        marker: &Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Every intent of `task_id`, oldest first.
    async fn agent_runs(&self, task_id: Uuid) -> Result<Vec<AgentRunRecord>, StoreError>;

    /// The run `run_id` of `task_id` ended without success and an operator retried the task:
    /// its `created` intent becomes `released` with `note`, so it no longer blocks a new run of
    /// the task nor counts for its pull-request head. True when an intent was released; false
    /// when none matched (already released by an earlier attempt, or never recorded).
    async fn release_ended_run(
        &self,
        task_id: Uuid,
        run_id: &str,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(force: bool) -> RunIntent {
        RunIntent {
            task_id: Uuid::now_v7(),
            attempt: 1,
            repository: Some("octo/repo".into()),
            pr_number: Some(7),
            head_sha: Some("abc".into()),
            force,
        }
    }

    fn head(open: u64) -> HeadRuns {
        let record = AgentRunRecord::pending(&intent(false), Utc::now());
        HeadRuns {
            open,
            latest: (open > 0).then_some(record),
        }
    }

    #[test]
    fn an_open_intent_of_the_task_is_resumed_whatever_the_head_says() {
        let open = AgentRunRecord::pending(&intent(false), Utc::now());
        let verdict = decide(
            Some(open.clone()),
            head(5),
            &intent(true),
            &AgentRunPolicy::default(),
        );
        assert_eq!(verdict, Verdict::Resume(open));
    }

    #[test]
    fn one_run_per_head_by_default_and_force_overrides() {
        let policy = AgentRunPolicy::default();
        assert_eq!(
            decide(None, head(0), &intent(false), &policy),
            Verdict::Admit
        );
        assert!(matches!(
            decide(None, head(1), &intent(false), &policy),
            Verdict::Refuse(Refusal::HeadHasRun { limit: 1, .. })
        ));
        assert_eq!(
            decide(None, head(1), &intent(true), &policy),
            Verdict::Admit
        );
        let two = AgentRunPolicy {
            max_runs_per_head: Some(2),
        };
        assert_eq!(decide(None, head(1), &intent(false), &two), Verdict::Admit);
        let unlimited = AgentRunPolicy {
            max_runs_per_head: None,
        };
        assert_eq!(
            decide(None, head(9), &intent(false), &unlimited),
            Verdict::Admit
        );
    }

    #[test]
    fn an_intent_without_a_known_head_is_not_limited() {
        let mut no_sha = intent(false);
        no_sha.head_sha = None;
        assert_eq!(
            decide(None, head(3), &no_sha, &AgentRunPolicy::default()),
            Verdict::Admit
        );
    }

    #[test]
    fn states_round_trip_and_only_three_are_open() {
        for state in AgentRunState::ALL {
            assert_eq!(AgentRunState::parse(state.as_str()), Some(state));
        }
        let open: Vec<_> = AgentRunState::ALL
            .into_iter()
            .filter(|s| s.is_open())
            .collect();
        assert_eq!(
            open,
            vec![
                AgentRunState::Pending,
                AgentRunState::Created,
                AgentRunState::Unresolved
            ]
        );
        assert_eq!(AgentRunState::parse("nope"), None);
    }
}
