//! `check_suite_failure_analysis`: reads every check run of the suite and asks for one fix
//! covering all runs that failed (reasons de-duplicated, failing checks listed).

use std::sync::Arc;

use async_trait::async_trait;
use orchestrator_core::error::TaskError;
use orchestrator_core::github::GitHubApi;
use orchestrator_core::handler::{HandlerOutcome, TaskContext, TaskHandler};
use orchestrator_core::routing::input::CheckSuiteInput;
use orchestrator_core::task::TaskType;
use serde_json::json;

use super::classify::TriggerReason;
use super::{CodegenTriggerInput, FailingCheck, analysis_outcome, reason_names};
use crate::config::HandlerConfig;

/// The `check_suite_failure_analysis` handler.
#[derive(Clone)]
pub struct CheckSuiteFailureAnalysis {
    github: Arc<dyn GitHubApi>,
    config: Arc<HandlerConfig>,
}

impl CheckSuiteFailureAnalysis {
    /// A handler reading check suites through `github`.
    pub fn new(github: Arc<dyn GitHubApi>, config: Arc<HandlerConfig>) -> Self {
        Self { github, config }
    }
}

#[async_trait]
impl TaskHandler for CheckSuiteFailureAnalysis {
    async fn handle(&self, ctx: &TaskContext) -> Result<HandlerOutcome, TaskError> {
        let suite: CheckSuiteInput = ctx.input()?;
        let repo = ctx.repo()?;
        let runs = self
            .github
            .check_suite_runs(suite.installation_id, &repo, suite.check_suite_id)
            .await?;
        let failing: Vec<FailingCheck> = runs
            .iter()
            .filter(|r| self.config.is_failure_conclusion(r.conclusion.as_deref()))
            .map(FailingCheck::from_run)
            .collect();
        let mut reasons: Vec<TriggerReason> = failing
            .iter()
            .map(|f| TriggerReason::for_check(f.kind))
            .collect();
        reasons.sort_unstable();
        reasons.dedup();
        let should_trigger = !failing.is_empty();
        let output = json!({
            "check_suite_id": suite.check_suite_id,
            "conclusion": suite.conclusion,
            "pr_number": suite.pr_number,
            "total_runs": runs.len(),
            "failed_runs": failing.len(),
            "should_trigger_codegen": should_trigger,
            "trigger_reasons": reason_names(&reasons),
            "failing_checks": failing,
        });
        let trigger = should_trigger.then(|| CodegenTriggerInput {
            source_task_type: TaskType::CHECK_SUITE_FAILURE_ANALYSIS.to_string(),
            reasons,
            installation_id: suite.installation_id,
            pr_title: None,
            pr_url: None,
            head_ref: suite.head_branch.clone(),
            failing_checks: failing,
            changed_files: Vec::new(),
        });
        analysis_outcome(ctx, &self.config, output, trigger)
    }
}
