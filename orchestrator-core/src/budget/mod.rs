//! Agent budgets: how many coding-agent runs may be created, and when the next may be.
//!
//! Every run creation of the `codegen_trigger` handler takes a slot of the [`AgentBudget`] right
//! before the agent-run ledger stores its intent. Three limits, one configuration
//! ([`AgentBudgetConfig`]):
//! - a global rate (default 10 per minute, Codegen's documented limit of run creations);
//! - runs per repository per hour (default unset);
//! - runs per pull-request head SHA (default 1). This one is not a rate: it is decided by the
//!   ledger inside its admission transaction ([`AgentRunPolicy`], from
//!   [`AgentBudgetConfig::run_policy`]) and a head over it completes its task `skipped`.
//!
//! Over the rate budgets the task waits: the handler returns a deferral (no attempt used, the
//! execution recorded `deferred` with the reason) until the slot frees, and nothing is stored
//! in the ledger, so a waiting task never holds an intent. A slot taken for a creation that the
//! ledger then refused (the head already has its run, the task was cancelled, an intent was
//! already open) is given back ([`AgentBudget::release`]).
//!
//! ## Layout
//! - `window.rs`: the decision, a pure function over the times of granted creations (a
//!   sliding-window log per scope), and why it is not GCRA.
//! - `memory.rs`: [`MemoryAgentBudget`], the in-process budget (one process, or tests).
//! - The shared budget for several instances is `RedisAgentBudget` in `orchestrator-redis`
//!   (the same log in sorted sets, decided by one Lua script).
//!
//! Time is the caller's `now` (the worker's injected clock), so every implementation is tested
//! without sleeping.

mod memory;
pub mod window;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::error::StoreError;
use crate::store::agent_run::AgentRunPolicy;

pub use memory::MemoryAgentBudget;
pub use window::WindowLimit;

/// The `output_data` key of a task waiting for the agent budget: `{"scope", "until",
/// "retry_count"}` (the task's retry count when it was deferred), read by the report on the
/// pull request.
pub const OUTPUT_KEY: &str = "agent_budget";

/// Codegen's documented limit of run creations per minute: the default global rate.
pub const DEFAULT_PER_MINUTE: u32 = 10;

/// One minute, the global window.
pub const MINUTE: Duration = Duration::from_secs(60);

/// One hour, the per-repository window.
pub const HOUR: Duration = Duration::from_secs(3600);

/// The limits of agent run creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentBudgetConfig {
    /// Run creations per minute over everything; `None`: no global rate.
    pub per_minute: Option<u32>,
    /// Run creations per repository per hour; `None`: no limit.
    pub per_repo_per_hour: Option<u32>,
    /// Runs per pull-request head SHA (open intents count); `None`: no limit. Applied by the
    /// agent-run ledger ([`AgentRunPolicy`]); a forced task is exempt.
    pub max_runs_per_head: Option<u32>,
}

impl Default for AgentBudgetConfig {
    fn default() -> Self {
        Self {
            per_minute: Some(DEFAULT_PER_MINUTE),
            per_repo_per_hour: None,
            max_runs_per_head: AgentRunPolicy::default().max_runs_per_head,
        }
    }
}

impl AgentBudgetConfig {
    /// No rate at all (the per-head rule stays at its default).
    pub fn unlimited() -> Self {
        Self {
            per_minute: None,
            per_repo_per_hour: None,
            ..Self::default()
        }
    }

    /// The ledger's part of the budget.
    pub fn run_policy(&self) -> AgentRunPolicy {
        AgentRunPolicy {
            max_runs_per_head: self.max_runs_per_head,
        }
    }

    /// The global window, when there is a global rate.
    pub fn global_window(&self) -> Option<WindowLimit> {
        self.per_minute.filter(|n| *n > 0).map(|limit| WindowLimit {
            limit,
            length: MINUTE,
        })
    }

    /// The per-repository window, when there is one.
    pub fn repo_window(&self) -> Option<WindowLimit> {
        self.per_repo_per_hour
            .filter(|n| *n > 0)
            .map(|limit| WindowLimit {
                limit,
                length: HOUR,
            })
    }

    /// The windows a creation for `repository` falls under, with their scope.
    pub fn windows(&self, repository: Option<&str>) -> Vec<(BudgetScope, WindowLimit)> {
        let global = self.global_window().map(|w| (BudgetScope::Global, w));
        let repo = repository
            .and(self.repo_window())
            .map(|w| (BudgetScope::Repository, w));
        global.into_iter().chain(repo).collect()
    }
}

/// Which limit a creation waits for (the `scope` label of `agent_budget_deferrals_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    /// The global rate.
    Global,
    /// The repository's hourly limit.
    Repository,
}

impl BudgetScope {
    /// The metric label and JSON name.
    pub const fn as_str(self) -> &'static str {
        match self {
            BudgetScope::Global => "global",
            BudgetScope::Repository => "repository",
        }
    }
}

/// A slot taken: the creation may proceed. Give it back with [`AgentBudget::release`] when no
/// run was asked for after all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetPermit {
    /// The slot's id (an entry of each window it counts in).
    pub slot: Uuid,
    /// The repository it counts for, when it counts in the per-repository window.
    pub repository: Option<String>,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
}

/// The answer of [`AgentBudget::acquire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetDecision {
    /// A slot was taken.
    Granted(BudgetPermit),
    /// Every slot of `scope` is used until `until`; nothing was taken.
    Wait {
        /// The limit that is used up (the one that frees last, when several are).
        scope: BudgetScope,
        /// When a slot frees.
        until: DateTime<Utc>,
    },
}

impl BudgetDecision {
    /// How long to wait from `now` (zero when granted).
    pub fn wait(&self, now: DateTime<Utc>) -> Duration {
        match self {
            BudgetDecision::Granted(_) => Duration::ZERO,
            BudgetDecision::Wait { until, .. } => (*until - now).to_std().unwrap_or_default(),
        }
    }
}

/// The global rate's state, for `/health`, metrics and the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetState {
    /// `memory` (this process) or `redis` (shared by every instance).
    pub backend: &'static str,
    /// The limits.
    pub per_minute: Option<u32>,
    /// Runs per repository per hour.
    pub per_repo_per_hour: Option<u32>,
    /// Runs per pull-request head SHA.
    pub max_runs_per_head: Option<u32>,
    /// Global slots free now (`None` without a global rate).
    pub remaining: Option<u32>,
    /// When the next global slot frees, while none is free.
    pub next_free_at: Option<DateTime<Utc>>,
}

/// The budget of agent run creations (see the module documentation).
#[async_trait]
pub trait AgentBudget: Send + Sync + std::fmt::Debug + 'static {
    /// The limits it applies.
    fn config(&self) -> &AgentBudgetConfig;

    /// Takes a slot of every window a creation for `repository` falls under at `now`, all or
    /// none, atomically with every other caller sharing the budget.
    async fn acquire(
        &self,
        repository: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<BudgetDecision, StoreError>;

    /// Gives a slot back: the creation it was taken for asked for no run.
    async fn release(&self, permit: &BudgetPermit) -> Result<(), StoreError>;

    /// The global rate's state at `now`.
    async fn state(&self, now: DateTime<Utc>) -> Result<BudgetState, StoreError>;
}

/// The state of a global window whose granted creations are `granted`, at `now`.
pub fn global_state(
    config: &AgentBudgetConfig,
    backend: &'static str,
    granted: &[DateTime<Utc>],
    now: DateTime<Utc>,
) -> BudgetState {
    let window = config.global_window();
    let remaining = window.map(|w| {
        let used = granted
            .iter()
            .filter(|t| window::inside(**t, w, now))
            .count();
        w.limit
            .saturating_sub(u32::try_from(used).unwrap_or(u32::MAX))
    });
    BudgetState {
        backend,
        per_minute: config.per_minute.filter(|n| *n > 0),
        per_repo_per_hour: config.per_repo_per_hour.filter(|n| *n > 0),
        max_runs_per_head: config.max_runs_per_head,
        remaining,
        next_free_at: window.and_then(|w| window::free_at(granted, w, now)),
    }
}
