//! The `input_data` of the built-in task types: the facts routing copies out of a delivery so
//! that a handler never parses the payload again. Routing writes them, handlers read them; both
//! go through these types so the two sides cannot drift apart.

use serde::{Deserialize, Serialize};

/// `input_data` of `pull_request_analysis`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestInput {
    /// The delivery's action (`opened`, `synchronize`, `reopened`, `ready_for_review`, ...).
    pub action: String,
    /// The App installation that sent it, for the installation token.
    pub installation_id: Option<i64>,
    /// Pull request number.
    pub number: u64,
    /// Whether it is a draft.
    pub draft: bool,
    /// Title.
    pub title: Option<String>,
    /// Page on GitHub.
    pub html_url: Option<String>,
    /// Head branch.
    pub head_ref: Option<String>,
    /// Head commit.
    pub head_sha: Option<String>,
    /// Base branch.
    pub base_ref: Option<String>,
    /// Who triggered the delivery.
    pub sender: Option<String>,
}

/// `input_data` of `check_failure_analysis`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRunInput {
    /// The App installation.
    pub installation_id: Option<i64>,
    /// Check run id.
    pub check_run_id: u64,
    /// Check name.
    pub name: String,
    /// `failure`, `cancelled`, `timed_out`, ...
    pub conclusion: Option<String>,
    /// Commit.
    pub head_sha: Option<String>,
    /// Page on GitHub.
    pub html_url: Option<String>,
    /// Output title.
    pub output_title: Option<String>,
    /// Output summary.
    pub output_summary: Option<String>,
    /// The pull request this task is for (one task per entry of `check_run.pull_requests`).
    pub pr_number: u64,
    /// That pull request's head branch.
    pub head_ref: Option<String>,
}

/// `input_data` of `check_suite_failure_analysis`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSuiteInput {
    /// The App installation.
    pub installation_id: Option<i64>,
    /// Check suite id.
    pub check_suite_id: u64,
    /// `failure`, `cancelled`, `timed_out`, ...
    pub conclusion: Option<String>,
    /// Commit.
    pub head_sha: Option<String>,
    /// Branch the suite ran on.
    pub head_branch: Option<String>,
    /// The pull request this task is for.
    pub pr_number: u64,
}

/// One commit of a push, as much as `push_analysis` needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushCommit {
    /// SHA.
    pub id: String,
    /// First line of the message.
    pub message: String,
    /// Files added.
    pub added: Vec<String>,
    /// Files removed.
    pub removed: Vec<String>,
    /// Files modified.
    pub modified: Vec<String>,
}

/// `input_data` of `push_analysis`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushInput {
    /// The App installation.
    pub installation_id: Option<i64>,
    /// Full ref, e.g. `refs/heads/main`.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Commit before the push.
    pub before: Option<String>,
    /// Commit after the push.
    pub after: Option<String>,
    /// Whether it was a force push.
    pub forced: bool,
    /// Who pushed.
    pub pusher: Option<String>,
    /// Compare URL.
    pub compare: Option<String>,
    /// The pushed commits (GitHub sends at most 20).
    pub commits: Vec<PushCommit>,
}
