//! `check_failure_analysis`: reads the check run from GitHub (its state may have changed since
//! the delivery, e.g. a re-run passed), and when it still counts as failed, classifies it (test /
//! lint / build / other) and asks for a fix.

use std::sync::Arc;

use async_trait::async_trait;
use orchestrator_core::error::TaskError;
use orchestrator_core::github::GitHubApi;
use orchestrator_core::handler::{HandlerOutcome, TaskContext, TaskHandler};
use orchestrator_core::routing::input::CheckRunInput;
use orchestrator_core::task::TaskType;
use serde_json::json;

use super::classify::TriggerReason;
use super::{CodegenTriggerInput, FailingCheck, analysis_outcome, reason_names};
use crate::config::HandlerConfig;

/// The `check_failure_analysis` handler.
#[derive(Clone)]
pub struct CheckFailureAnalysis {
    github: Arc<dyn GitHubApi>,
    config: Arc<HandlerConfig>,
}

impl CheckFailureAnalysis {
    /// A handler reading check runs through `github`.
    pub fn new(github: Arc<dyn GitHubApi>, config: Arc<HandlerConfig>) -> Self {
        Self { github, config }
    }
}

#[async_trait]
impl TaskHandler for CheckFailureAnalysis {
    async fn handle(&self, ctx: &TaskContext) -> Result<HandlerOutcome, TaskError> {
        let check: CheckRunInput = ctx.input()?;
        let repo = ctx.repo()?;
        let run = self
            .github
            .check_run(check.installation_id, &repo, check.check_run_id)
            .await?;
        let failed = self.config.is_failure_conclusion(run.conclusion.as_deref());
        let failing = FailingCheck::from_run(&run);
        let reasons = if failed {
            vec![TriggerReason::for_check(failing.kind)]
        } else {
            Vec::new()
        };
        let output = json!({
            "check_run_id": run.id,
            "check_name": run.name,
            "conclusion": run.conclusion,
            "failure_type": failing.kind,
            "pr_number": check.pr_number,
            "should_trigger_codegen": failed,
            "trigger_reasons": reason_names(&reasons),
            "failing_checks": if failed { vec![&failing] } else { Vec::new() },
        });
        let trigger = failed.then(|| CodegenTriggerInput {
            source_task_type: TaskType::CHECK_FAILURE_ANALYSIS.to_string(),
            reasons,
            installation_id: check.installation_id,
            pr_title: None,
            pr_url: None,
            head_ref: check.head_ref.clone(),
            failing_checks: vec![failing.clone()],
            changed_files: Vec::new(),
        });
        analysis_outcome(ctx, &self.config, output, trigger)
    }
}
