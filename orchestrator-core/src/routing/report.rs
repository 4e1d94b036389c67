//! The reporter's buttons (issue 17) and the guard against reporting loops.
//!
//! - [`OwnChecks`] names the orchestrator's own check runs (its check name, and its GitHub
//!   App's id when known). A [`Router`](super::Router) told about them
//!   ([`Router::ignore_own_checks`](super::Router::ignore_own_checks)) gives `check_run` and
//!   `check_suite` deliveries about our own checks only to rules that ask for them
//!   ([`Rule::handles_own_checks`]): the failure rules never
//!   analyse a check the orchestrator reported itself (a `cancelled` or `failure` conclusion of
//!   ours would otherwise start an analysis of itself, and so on for ever).
//! - [`ReportButtonsRule`] (`report_buttons`) turns the buttons of our checks into tasks:
//!   GitHub's "Re-run" (`check_run.rerequested`, `check_suite.rerequested`) starts one fresh
//!   `pull_request_analysis` of that commit per pull request (forced past the
//!   one-run-per-head-SHA limit: a person asked); the "Ask Codegen to fix" action
//!   (`check_run.requested_action` with identifier [`ASK_CODEGEN_ACTION`], offered where
//!   automatic runs are off for the repository) asks for one forced `codegen_trigger` for the
//!   failure, whose parent is the analysis the check reports (its `external_id`), so that
//!   check follows the run to its end.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::input::PullRequestInput;
use super::{Rule, spec};
use crate::payload::{CheckRun, CheckSuite, EventKind, ParsedEvent, PullRequestRef};
use crate::report::ASK_CODEGEN_ACTION;
use crate::store::agent_run::FORCE_CONFIG_KEY;
use crate::task::{PARENT_TASK_CONFIG_KEY, TaskSpec, TaskType};

/// Which checks are the orchestrator's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnChecks {
    /// The reported check name (`REPORT_CHECK_NAME`); check failure analyses report as
    /// `<name> / <check>`.
    pub check_name: String,
    /// The GitHub App that creates them, when known (`GITHUB_APP_ID`).
    pub app_id: Option<u64>,
}

impl OwnChecks {
    /// Whether `run` is one of ours: same App (when known) and our name.
    pub fn is_own_run(&self, run: &CheckRun) -> bool {
        let app_matches = match (self.app_id, run.app.as_ref()) {
            (Some(ours), Some(app)) => app.id == ours,
            (Some(_), None) => false,
            (None, _) => true,
        };
        let name = run.name.as_str();
        let name_matches = name == self.check_name
            || name
                .strip_prefix(self.check_name.as_str())
                .is_some_and(|rest| rest.starts_with(" / "));
        app_matches && name_matches
    }

    /// Whether `suite` is ours: created by our App (suites have no name; without an App id
    /// none is).
    pub fn is_own_suite(&self, suite: &CheckSuite) -> bool {
        matches!((self.app_id, suite.app.as_ref()), (Some(ours), Some(app)) if app.id == ours)
    }

    /// Whether `event` is a `check_run` / `check_suite` delivery about one of our checks.
    pub fn concerns(&self, event: &ParsedEvent) -> bool {
        match &event.kind {
            EventKind::CheckRun(run) => self.is_own_run(run),
            EventKind::CheckSuite(suite) => self.is_own_suite(suite),
            _ => false,
        }
    }
}

/// Re-run and "Ask Codegen to fix" on our own checks -> tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportButtonsRule {
    /// Which checks are ours.
    pub own: OwnChecks,
}

impl ReportButtonsRule {
    /// The rule's name.
    pub const NAME: &'static str = "report_buttons";
}

impl Rule for ReportButtonsRule {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn handles_own_checks(&self) -> bool {
        true
    }

    fn route(&self, event: &ParsedEvent) -> Vec<TaskSpec> {
        let action = event.action.as_deref();
        match &event.kind {
            EventKind::CheckRun(run) if self.own.is_own_run(run) => match action {
                Some("rerequested") => {
                    reanalyse(event, &run.pull_requests, run.head_sha.as_deref())
                }
                Some("requested_action")
                    if run.requested_action.as_deref() == Some(ASK_CODEGEN_ACTION) =>
                {
                    ask_codegen(event, run)
                }
                _ => Vec::new(),
            },
            EventKind::CheckSuite(suite)
                if self.own.is_own_suite(suite) && action == Some("rerequested") =>
            {
                reanalyse(event, &suite.pull_requests, suite.head_sha.as_deref())
            }
            _ => Vec::new(),
        }
    }
}

fn forced() -> Value {
    json!({ FORCE_CONFIG_KEY: true })
}

/// One forced `pull_request_analysis` of `sha` per pull request.
fn reanalyse(event: &ParsedEvent, prs: &[PullRequestRef], sha: Option<&str>) -> Vec<TaskSpec> {
    let Some(sha) = sha.filter(|s| !s.is_empty()) else {
        return Vec::new();
    };
    prs.iter()
        .map(|pr| {
            let input = PullRequestInput {
                action: "rerequested".to_owned(),
                installation_id: event.installation_id,
                number: pr.number,
                draft: false,
                title: None,
                html_url: None,
                head_ref: pr.head.git_ref.clone(),
                head_sha: Some(sha.to_owned()),
                base_ref: pr.base.git_ref.clone(),
                sender: event.sender.clone(),
            };
            let mut task = spec(TaskType::PULL_REQUEST_ANALYSIS, 0, &forced(), event, &input);
            task.pr_number = i64::try_from(pr.number).ok();
            task.branch = input.head_ref;
            task.commit_sha = input.head_sha;
            task
        })
        .collect()
}

/// One forced `codegen_trigger` per pull request of our check, for the failure it reported, a
/// follow-up of the analysis the check reports (its `external_id`, when it is a task id).
fn ask_codegen(event: &ParsedEvent, run: &CheckRun) -> Vec<TaskSpec> {
    let mut config = forced();
    if let Some(analysis) = run
        .external_id
        .as_deref()
        .filter(|id| id.parse::<Uuid>().is_ok())
    {
        config[PARENT_TASK_CONFIG_KEY] = json!(analysis);
    }
    let source = if run.name.ends_with(" / check suite") {
        TaskType::CHECK_SUITE_FAILURE_ANALYSIS
    } else {
        TaskType::CHECK_FAILURE_ANALYSIS
    };
    run.pull_requests
        .iter()
        .map(|pr| {
            let input = json!({
                "source_task_type": source.as_str(),
                "reasons": ["check_failure"],
                "installation_id": event.installation_id,
                "head_ref": pr.head.git_ref,
                "requested_by": event.sender,
                "requested_from_check_run": run.id,
            });
            let mut task = spec(TaskType::CODEGEN_TRIGGER, 0, &config, event, &input);
            task.pr_number = i64::try_from(pr.number).ok();
            task.branch = pr.head.git_ref.clone();
            task.commit_sha = run.head_sha.clone();
            task
        })
        .collect()
}
