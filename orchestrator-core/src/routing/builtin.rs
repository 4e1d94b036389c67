//! The default rules of the spec, as configurable values.
//!
//! | name | event | matches | tasks |
//! |---|---|---|---|
//! | `pull_request_analysis` | `pull_request` | action in `opened`, `synchronize`, `reopened`, `ready_for_review` | one `pull_request_analysis` |
//! | `check_run_failure` | `check_run` | action `completed`, conclusion in `failure`, `cancelled`, `timed_out` | one `check_failure_analysis` per `check_run.pull_requests` entry |
//! | `check_suite_failure` | `check_suite` | same | one `check_suite_failure_analysis` per pull request |
//! | `push_default_branch` | `push` | `ref` is `refs/heads/<repository.default_branch>`, not a deletion | one `push_analysis` |
//!
//! Each rule is a plain struct with public fields (and serde support), so the action and
//! conclusion sets, the priority and the task `config` come from the user's configuration.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::input::{CheckRunInput, CheckSuiteInput, PullRequestInput, PushCommit, PushInput};
use super::{Rule, empty_object, spec};
use crate::payload::{EventKind, ParsedEvent, PullRequestRef};
use crate::task::{TaskSpec, TaskType};

/// The conclusions the check rules treat as failures by default.
pub const DEFAULT_FAILURE_CONCLUSIONS: [&str; 3] = ["failure", "cancelled", "timed_out"];
/// The pull request actions analysed by default.
pub const DEFAULT_PULL_REQUEST_ACTIONS: [&str; 4] =
    ["opened", "synchronize", "reopened", "ready_for_review"];

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn contains(set: &[String], value: Option<&str>) -> bool {
    value.is_some_and(|v| set.iter().any(|s| s == v))
}

fn pr_number(n: u64) -> Option<i64> {
    i64::try_from(n).ok()
}

/// `pull_request` with an analysed action -> one `pull_request_analysis`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PullRequestRule {
    /// Actions that cause a task (`closed` and the rest are stored only).
    pub actions: Vec<String>,
    /// Priority of the tasks.
    pub priority: i32,
    /// `config` of the tasks.
    pub config: Value,
}

impl PullRequestRule {
    /// The rule's name.
    pub const NAME: &'static str = "pull_request_analysis";
}

impl Default for PullRequestRule {
    fn default() -> Self {
        Self {
            actions: strings(&DEFAULT_PULL_REQUEST_ACTIONS),
            priority: 0,
            config: empty_object(),
        }
    }
}

impl Rule for PullRequestRule {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn may_route(&self, event: &str, action: Option<&str>) -> bool {
        event == "pull_request" && contains(&self.actions, action)
    }

    fn route(&self, event: &ParsedEvent) -> Vec<TaskSpec> {
        let EventKind::PullRequest(pr) = &event.kind else {
            return Vec::new();
        };
        if !contains(&self.actions, event.action.as_deref()) {
            return Vec::new();
        }
        let input = PullRequestInput {
            action: event.action.clone().unwrap_or_default(),
            installation_id: event.installation_id,
            number: pr.number,
            draft: pr.draft,
            title: pr.title.clone(),
            html_url: pr.html_url.clone(),
            head_ref: pr.head.git_ref.clone(),
            head_sha: pr.head.sha.clone(),
            base_ref: pr.base.git_ref.clone(),
            sender: event.sender.clone(),
        };
        let mut task = spec(
            TaskType::PULL_REQUEST_ANALYSIS,
            self.priority,
            &self.config,
            event,
            &input,
        );
        task.pr_number = pr_number(pr.number);
        task.branch = input.head_ref;
        task.commit_sha = input.head_sha;
        vec![task]
    }
}

/// `check_run` completed with a failing conclusion -> one `check_failure_analysis` per pull
/// request of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckRunFailureRule {
    /// Conclusions that count as failures.
    pub conclusions: Vec<String>,
    /// Priority of the tasks.
    pub priority: i32,
    /// `config` of the tasks.
    pub config: Value,
}

impl CheckRunFailureRule {
    /// The rule's name.
    pub const NAME: &'static str = "check_run_failure";
}

impl Default for CheckRunFailureRule {
    fn default() -> Self {
        Self {
            conclusions: strings(&DEFAULT_FAILURE_CONCLUSIONS),
            priority: 0,
            config: empty_object(),
        }
    }
}

impl Rule for CheckRunFailureRule {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn may_route(&self, event: &str, action: Option<&str>) -> bool {
        event == "check_run" && action == Some("completed")
    }

    fn route(&self, event: &ParsedEvent) -> Vec<TaskSpec> {
        let EventKind::CheckRun(run) = &event.kind else {
            return Vec::new();
        };
        if event.action.as_deref() != Some("completed")
            || !contains(&self.conclusions, run.conclusion.as_deref())
        {
            return Vec::new();
        }
        run.pull_requests
            .iter()
            .map(|pr: &PullRequestRef| {
                let input = CheckRunInput {
                    installation_id: event.installation_id,
                    check_run_id: run.id,
                    name: run.name.clone(),
                    conclusion: run.conclusion.clone(),
                    head_sha: run.head_sha.clone(),
                    html_url: run.html_url.clone(),
                    output_title: run.output.title.clone(),
                    output_summary: run.output.summary.clone(),
                    pr_number: pr.number,
                    head_ref: pr.head.git_ref.clone(),
                };
                let mut task = spec(
                    TaskType::CHECK_FAILURE_ANALYSIS,
                    self.priority,
                    &self.config,
                    event,
                    &input,
                );
                task.pr_number = pr_number(pr.number);
                task.branch = input
                    .head_ref
                    .or_else(|| run.check_suite.head_branch.clone());
                task.commit_sha = input.head_sha;
                task
            })
            .collect()
    }
}

/// `check_suite` completed with a failing conclusion -> one `check_suite_failure_analysis` per
/// pull request of the suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckSuiteFailureRule {
    /// Conclusions that count as failures.
    pub conclusions: Vec<String>,
    /// Priority of the tasks.
    pub priority: i32,
    /// `config` of the tasks.
    pub config: Value,
}

impl CheckSuiteFailureRule {
    /// The rule's name.
    pub const NAME: &'static str = "check_suite_failure";
}

impl Default for CheckSuiteFailureRule {
    fn default() -> Self {
        Self {
            conclusions: strings(&DEFAULT_FAILURE_CONCLUSIONS),
            priority: 0,
            config: empty_object(),
        }
    }
}

impl Rule for CheckSuiteFailureRule {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn may_route(&self, event: &str, action: Option<&str>) -> bool {
        event == "check_suite" && action == Some("completed")
    }

    fn route(&self, event: &ParsedEvent) -> Vec<TaskSpec> {
        let EventKind::CheckSuite(suite) = &event.kind else {
            return Vec::new();
        };
        if event.action.as_deref() != Some("completed")
            || !contains(&self.conclusions, suite.conclusion.as_deref())
        {
            return Vec::new();
        }
        suite
            .pull_requests
            .iter()
            .map(|pr| {
                let input = CheckSuiteInput {
                    installation_id: event.installation_id,
                    check_suite_id: suite.id,
                    conclusion: suite.conclusion.clone(),
                    head_sha: suite.head_sha.clone(),
                    head_branch: suite.head_branch.clone(),
                    pr_number: pr.number,
                };
                let mut task = spec(
                    TaskType::CHECK_SUITE_FAILURE_ANALYSIS,
                    self.priority,
                    &self.config,
                    event,
                    &input,
                );
                task.pr_number = pr_number(pr.number);
                task.branch = pr.head.git_ref.clone().or(input.head_branch);
                task.commit_sha = input.head_sha;
                task
            })
            .collect()
    }
}

/// `push` to the repository's default branch -> one `push_analysis`. Other branches, tags and
/// branch deletions cause no task; so does a push whose payload names no default branch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PushDefaultBranchRule {
    /// Priority of the tasks.
    pub priority: i32,
    /// `config` of the tasks.
    pub config: Value,
}

impl PushDefaultBranchRule {
    /// The rule's name.
    pub const NAME: &'static str = "push_default_branch";
}

impl Default for PushDefaultBranchRule {
    fn default() -> Self {
        Self {
            priority: 0,
            config: empty_object(),
        }
    }
}

impl Rule for PushDefaultBranchRule {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn may_route(&self, event: &str, action: Option<&str>) -> bool {
        let _ = action;
        event == "push"
    }

    fn route(&self, event: &ParsedEvent) -> Vec<TaskSpec> {
        let EventKind::Push(push) = &event.kind else {
            return Vec::new();
        };
        let default_branch = event
            .repository
            .as_ref()
            .and_then(|r| r.default_branch.as_deref());
        let deleted = push.deleted
            || push
                .after
                .as_deref()
                .is_some_and(|a| a.bytes().all(|b| b == b'0'));
        if deleted || default_branch.is_none() || push.branch() != default_branch {
            return Vec::new();
        }
        let input = PushInput {
            installation_id: event.installation_id,
            git_ref: push.git_ref.clone(),
            before: push.before.clone(),
            after: push.after.clone(),
            forced: push.forced,
            pusher: push.pusher.name.clone(),
            compare: push.compare.clone(),
            commits: push
                .commits
                .iter()
                .map(|c| PushCommit {
                    id: c.id.clone(),
                    message: c.message.lines().next().unwrap_or_default().to_owned(),
                    added: c.added.clone(),
                    removed: c.removed.clone(),
                    modified: c.modified.clone(),
                })
                .collect(),
        };
        let mut task = spec(
            TaskType::PUSH_ANALYSIS,
            self.priority,
            &self.config,
            event,
            &input,
        );
        task.branch = push.branch().map(str::to_owned);
        task.commit_sha = input.after;
        vec![task]
    }
}
