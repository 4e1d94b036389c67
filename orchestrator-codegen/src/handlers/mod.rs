//! The task handlers of the five built-in task types, and [`register_handlers`] that puts them
//! in the core's registry.
//!
//! The analysis handlers decide from GitHub's state whether a coding agent should act; when it
//! should, they finish with a `codegen_trigger` follow-up (a new task row, linked to the same
//! event and parented to the analysis) whose `input_data` is a [`CodegenTriggerInput`].
//! `codegen_trigger` starts the agent run and follows it to its end.
//!
//! - `classify.rs`: file / check classification and trigger reasons (pure).
//! - `pull_request.rs`, `check_run.rs`, `check_suite.rs`, `push.rs`: the analyses.
//! - `codegen_trigger.rs`: start (through the agent budget, `budget.rs`, and the agent-run
//!   ledger) and follow a run;
//!   `reconcile.rs`: find a run whose creation answer was lost, or stop the task for a person;
//!   `prompt.rs`: what the agent is told; `run_end.rs`: how the run's end (failed, stopped,
//!   completed) ends the task, and how an operator's retry asks for a new run.
//!
//! An analysis passes its task's `"force": true` config (reprocess with `?force=true`) on to its
//! `codegen_trigger` follow-up, which then may create a run for a head SHA that already has one.

mod budget;
mod check_run;
mod check_suite;
mod classify;
mod codegen_trigger;
mod prompt;
mod pull_request;
mod push;
mod reconcile;
mod run_end;
mod unsent;

use std::sync::Arc;

use orchestrator_core::agent::CodingAgent;
use orchestrator_core::budget::{AgentBudget, MemoryAgentBudget};
use orchestrator_core::error::TaskError;
use orchestrator_core::github::{CheckRun, GitHubApi};
use orchestrator_core::handler::{HandlerOutcome, HandlerRegistry, TaskContext};
use orchestrator_core::observe::Observer;
use orchestrator_core::report::view::CODEGEN_ON_REQUEST;
use orchestrator_core::store::agent_run::{AgentRunStore, FORCE_CONFIG_KEY, is_forced};
use orchestrator_core::task::{TaskSpec, TaskType};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use budget::BUDGET_OUTPUT_KEY;
pub use check_run::CheckFailureAnalysis;
pub use check_suite::CheckSuiteFailureAnalysis;
pub use classify::{CheckKind, FileKind, TriggerReason, classify_check, classify_file};
pub use codegen_trigger::CodegenTrigger;
pub use prompt::build_prompt;
pub use pull_request::PullRequestAnalysis;
pub use push::PushAnalysis;
pub use reconcile::{NEEDS_ATTENTION, needs_attention};
pub use run_end::{RUN_CANCELLED, RUN_FAILED};

use crate::config::HandlerConfig;

/// `input_data` of a `codegen_trigger` task, written by the analysis that asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodegenTriggerInput {
    /// The task type that asked (`pull_request_analysis`, `check_failure_analysis`, ...).
    pub source_task_type: String,
    /// Why the agent should act; one prompt instruction each.
    #[serde(default)]
    pub reasons: Vec<TriggerReason>,
    /// The App installation, carried along for follow-up GitHub calls.
    #[serde(default)]
    pub installation_id: Option<i64>,
    /// The pull request's title.
    #[serde(default)]
    pub pr_title: Option<String>,
    /// The pull request's page.
    #[serde(default)]
    pub pr_url: Option<String>,
    /// The branch to fix.
    #[serde(default)]
    pub head_ref: Option<String>,
    /// The failing checks, when a check failure asked.
    #[serde(default)]
    pub failing_checks: Vec<FailingCheck>,
    /// Changed code and test files (at most 50), when a pull request analysis asked.
    #[serde(default)]
    pub changed_files: Vec<String>,
}

/// A failing check as passed to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailingCheck {
    /// Check run id.
    pub id: u64,
    /// Check name.
    pub name: String,
    /// Its conclusion (`failure`, `timed_out`, ...).
    pub conclusion: Option<String>,
    /// Test, lint, build or other.
    pub kind: CheckKind,
    /// Its page on GitHub.
    pub html_url: Option<String>,
    /// Output title.
    pub title: Option<String>,
    /// Output summary.
    pub summary: Option<String>,
}

impl FailingCheck {
    /// From a check run read from GitHub.
    pub fn from_run(run: &CheckRun) -> Self {
        Self {
            id: run.id,
            name: run.name.clone(),
            conclusion: run.conclusion.clone(),
            kind: classify::classify_check(&run.name),
            html_url: run.html_url.clone(),
            title: run.output_title.clone(),
            summary: run.output_summary.clone(),
        }
    }
}

/// Registers the five built-in handlers in one call. `runs` is the agent-run ledger
/// `codegen_trigger` records every run creation in before it asks for it (the SQL store, or the
/// memory store, implements it). Run creations take slots of an in-process agent budget
/// applying `config.budget`; [`register_handlers_with_budget`] gives them a shared one.
pub fn register_handlers(
    registry: &mut HandlerRegistry,
    github: Arc<dyn GitHubApi>,
    agent: Arc<dyn CodingAgent>,
    runs: Arc<dyn AgentRunStore>,
    config: HandlerConfig,
    observer: Arc<dyn Observer>,
) {
    let budget = Arc::new(MemoryAgentBudget::new(config.budget));
    register_handlers_with_budget(registry, github, agent, runs, budget, config, observer);
}

/// [`register_handlers`] with the agent budget `budget` (e.g. the Redis one shared by every
/// instance, or the instance `/health` reports).
pub fn register_handlers_with_budget(
    registry: &mut HandlerRegistry,
    github: Arc<dyn GitHubApi>,
    agent: Arc<dyn CodingAgent>,
    runs: Arc<dyn AgentRunStore>,
    budget: Arc<dyn AgentBudget>,
    config: HandlerConfig,
    observer: Arc<dyn Observer>,
) {
    let config = Arc::new(config);
    registry.register(
        TaskType::PULL_REQUEST_ANALYSIS,
        PullRequestAnalysis::new(github.clone(), config.clone()),
    );
    registry.register(
        TaskType::CHECK_FAILURE_ANALYSIS,
        CheckFailureAnalysis::new(github.clone(), config.clone()),
    );
    registry.register(
        TaskType::CHECK_SUITE_FAILURE_ANALYSIS,
        CheckSuiteFailureAnalysis::new(github, config.clone()),
    );
    registry.register(TaskType::PUSH_ANALYSIS, PushAnalysis::new(config.clone()));
    registry.register(
        TaskType::CODEGEN_TRIGGER,
        CodegenTrigger::new(agent, runs, config, observer).with_budget(budget),
    );
}

/// A finished analysis: its output, plus a `codegen_trigger` follow-up when asked. A failed
/// check's analysis in a repository where such runs are started by hand
/// ([`HandlerConfig::fixes_on_request`]) asks for none: its output says
/// [`CODEGEN_ON_REQUEST`], and its check's "Ask Codegen to fix" button starts the run.
pub(crate) fn analysis_outcome(
    ctx: &TaskContext,
    config: &HandlerConfig,
    mut output: Value,
    mut trigger: Option<CodegenTriggerInput>,
) -> Result<HandlerOutcome, TaskError> {
    let task_type = &ctx.task.task_type;
    let check_analysis = *task_type == TaskType::CHECK_FAILURE_ANALYSIS
        || *task_type == TaskType::CHECK_SUITE_FAILURE_ANALYSIS;
    if trigger.is_some()
        && check_analysis
        && config.fixes_on_request(ctx.task.repository.as_deref())
        && let Some(fields) = output.as_object_mut()
    {
        fields.insert(CODEGEN_ON_REQUEST.to_owned(), Value::Bool(true));
        trigger = None;
    }
    let followups = match trigger {
        None => Vec::new(),
        Some(input) => {
            let input_data = serde_json::to_value(&input).map_err(|e| {
                TaskError::permanent(format!("cannot encode codegen_trigger input: {e}"))
            })?;
            let task = &ctx.task;
            let mut trigger_config = serde_json::Map::new();
            if is_forced(&task.config) {
                trigger_config.insert(FORCE_CONFIG_KEY.to_owned(), Value::Bool(true));
            }
            vec![TaskSpec {
                task_type: TaskType::CODEGEN_TRIGGER,
                priority: config.trigger_priority,
                repository: task.repository.clone(),
                pr_number: task.pr_number,
                branch: input.head_ref.clone().or_else(|| task.branch.clone()),
                commit_sha: task.commit_sha.clone(),
                config: Value::Object(trigger_config),
                input_data,
            }]
        }
    };
    Ok(HandlerOutcome::Completed { output, followups })
}

/// Reasons as their stored names.
pub(crate) fn reason_names(reasons: &[TriggerReason]) -> Vec<&'static str> {
    reasons.iter().map(|r| r.as_str()).collect()
}
