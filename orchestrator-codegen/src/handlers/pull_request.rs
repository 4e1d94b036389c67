//! `pull_request_analysis`: reads the pull request's changed files and decides whether the agent
//! should review or fix it.
//!
//! Decision (the earlier implementation's, configurable): drafts are skipped unless the action
//! is `ready_for_review`; `opened` with at least one code file, `ready_for_review`, and a
//! `synchronize` with more than `synchronize_code_file_threshold` (3) code files ask for a run.
//! File kinds are exclusive (see [`classify_file`]); "code files" excludes tests and config.

use std::sync::Arc;

use async_trait::async_trait;
use orchestrator_core::error::TaskError;
use orchestrator_core::github::GitHubApi;
use orchestrator_core::handler::{HandlerOutcome, TaskContext, TaskHandler};
use orchestrator_core::routing::input::PullRequestInput;
use orchestrator_core::task::TaskType;
use serde_json::json;

use super::classify::{FileCounts, FileKind, TriggerReason, classify_file};
use super::{CodegenTriggerInput, analysis_outcome, reason_names};
use crate::config::HandlerConfig;

/// Most changed files listed in the `codegen_trigger` input.
const MAX_LISTED_FILES: usize = 50;

/// The `pull_request_analysis` handler.
#[derive(Clone)]
pub struct PullRequestAnalysis {
    github: Arc<dyn GitHubApi>,
    config: Arc<HandlerConfig>,
}

impl PullRequestAnalysis {
    /// A handler reading files through `github`.
    pub fn new(github: Arc<dyn GitHubApi>, config: Arc<HandlerConfig>) -> Self {
        Self { github, config }
    }
}

/// The reasons for an agent run (empty: none). A person's "Re-run" of our check
/// (`rerequested`, see `orchestrator_core::routing::report`) is analysed like a new pull request.
pub(crate) fn pr_reasons(
    action: &str,
    counts: FileCounts,
    config: &HandlerConfig,
) -> Vec<TriggerReason> {
    let mut reasons = Vec::new();
    match action {
        "opened" | "rerequested" if counts.code > 0 => {
            reasons.push(TriggerReason::NewPrWithCodeChanges)
        }
        "ready_for_review" => reasons.push(TriggerReason::ReadyForReview),
        "synchronize" if counts.code > config.synchronize_code_file_threshold => {
            reasons.push(TriggerReason::SignificantCodeChanges)
        }
        _ => {}
    }
    reasons
}

#[async_trait]
impl TaskHandler for PullRequestAnalysis {
    async fn handle(&self, ctx: &TaskContext) -> Result<HandlerOutcome, TaskError> {
        let pr: PullRequestInput = ctx.input()?;
        let repo = ctx.repo()?;
        if pr.draft && pr.action != "ready_for_review" {
            let output = json!({
                "action": pr.action,
                "pr_number": pr.number,
                "draft": true,
                "should_trigger_codegen": false,
                "trigger_reasons": [],
                "skipped": "draft pull request",
            });
            return analysis_outcome(ctx, &self.config, output, None);
        }
        let files = self
            .github
            .pull_request_files(pr.installation_id, &repo, pr.number)
            .await?;
        let mut counts = FileCounts::default();
        let (mut additions, mut deletions) = (0u64, 0u64);
        let mut listed = Vec::new();
        for file in &files {
            let kind = classify_file(&file.filename, &self.config);
            counts.add(kind);
            additions = additions.saturating_add(file.additions);
            deletions = deletions.saturating_add(file.deletions);
            if matches!(kind, FileKind::Code | FileKind::Test) && listed.len() < MAX_LISTED_FILES {
                listed.push(file.filename.clone());
            }
        }
        let reasons = pr_reasons(&pr.action, counts, &self.config);
        let should_trigger = !reasons.is_empty();
        let output = json!({
            "action": pr.action,
            "pr_number": pr.number,
            "draft": pr.draft,
            "should_trigger_codegen": should_trigger,
            "trigger_reasons": reason_names(&reasons),
            "files_changed": files.len(),
            "code_files": counts.code,
            "test_files": counts.test,
            "config_files": counts.config,
            "other_files": counts.other,
            "additions": additions,
            "deletions": deletions,
        });
        let trigger = should_trigger.then(|| CodegenTriggerInput {
            source_task_type: TaskType::PULL_REQUEST_ANALYSIS.to_string(),
            reasons,
            installation_id: pr.installation_id,
            pr_title: pr.title.clone(),
            pr_url: pr.html_url.clone(),
            head_ref: pr.head_ref.clone(),
            failing_checks: Vec::new(),
            changed_files: listed,
        });
        analysis_outcome(ctx, &self.config, output, trigger)
    }
}
