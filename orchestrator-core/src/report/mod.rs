//! Reporting back on the pull request (issue 17): a check run (GitHub App) or a commit status
//! (personal token) for every PR-level task, and optionally one pull-request comment kept up to
//! date.
//!
//! Reporting is never done inside handlers. The [`Reporter`] runs beside the workers: it reads
//! the tasks changed since its durable cursor ([`ReportStore`]), renders what the author should
//! see ([`view::render`]) and sends it through a [`ReportApi`] (the GitHub client, with its
//! breaker, quota floor and `Retry-After`) only when it differs from what GitHub last accepted.
//! So several changes between two ticks are one request with the latest state, a restart
//! continues where it stopped, and an API / worker split works (the worker side reports). A
//! failed send is logged, counted (`github_reports_total{kind,outcome}`) and retried with a
//! back-off; it never touches the task.
//!
//! ## Layout
//! - [`view`]: [`ReportView`] from task rows, and GitHub's JSON bodies for it.
//! - `reporter.rs`: [`Reporter`], one [`tick`](Reporter::tick) at a time.
//! - `comment.rs`: the single pull-request comment.
//!
//! [`ReportStore`]: crate::store::report::ReportStore

mod comment;
mod reporter;
pub mod view;

#[cfg(test)]
mod tests;

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::ClientError;
use crate::github::RepoRef;

pub use reporter::{Reporter, TickSummary};
pub use view::{ASK_CODEGEN_ACTION, CheckStatus, Conclusion, ReportView};

/// Where reports go (`REPORT_TO_GITHUB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportMode {
    /// Check runs (needs a GitHub App with `checks:write`).
    Checks,
    /// Commit statuses (a personal token is enough).
    Statuses,
    /// Nothing is reported.
    Off,
}

impl ReportMode {
    /// `checks`, `statuses`, `off`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReportMode::Checks => "checks",
            ReportMode::Statuses => "statuses",
            ReportMode::Off => "off",
        }
    }

    /// The mode a name names (case-insensitive).
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "checks" => Some(ReportMode::Checks),
            "statuses" => Some(ReportMode::Statuses),
            "off" => Some(ReportMode::Off),
            _ => None,
        }
    }

    /// The default for the credentials there are: checks with an App, statuses with a token,
    /// off without either.
    pub const fn default_for(app: bool, token: bool) -> Self {
        if app {
            ReportMode::Checks
        } else if token {
            ReportMode::Statuses
        } else {
            ReportMode::Off
        }
    }
}

/// The default check name / status context (`REPORT_CHECK_NAME`).
pub const DEFAULT_CHECK_NAME: &str = "webhook-orchestrator";

/// How the reporter works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportConfig {
    /// Where reports go.
    pub mode: ReportMode,
    /// Check name / status context.
    pub check_name: String,
    /// Also keep one comment per pull request up to date (`REPORT_PR_COMMENT`).
    pub pr_comment: bool,
    /// Time between two ticks of the background service.
    pub interval: Duration,
    /// Changed tasks read per tick.
    pub batch: u32,
    /// How far behind "now" the cursor stays, so a task written late (a transaction that
    /// committed after a later one, another process's clock) is still seen; tasks in this
    /// window are read again and sent only if changed.
    pub overlap: Duration,
    /// How long one reporter holds the lease (other processes wait).
    pub lease: Duration,
    /// The first wait after a failed send (doubling up to `retry_max`).
    pub retry_initial: Duration,
    /// The longest wait between tries.
    pub retry_max: Duration,
    /// Tries of one report before it waits for the task's next change.
    pub max_failures: u32,
}

impl Default for ReportConfig {
    fn default() -> Self {
        Self {
            mode: ReportMode::Off,
            check_name: DEFAULT_CHECK_NAME.to_owned(),
            pr_comment: false,
            interval: Duration::from_secs(1),
            batch: 200,
            overlap: Duration::from_secs(5),
            lease: Duration::from_secs(30),
            retry_initial: Duration::from_secs(5),
            retry_max: Duration::from_secs(600),
            max_failures: 10,
        }
    }
}

/// The GitHub calls of reporting. `installation_id` picks the App installation's token.
#[async_trait]
pub trait ReportApi: Send + Sync + 'static {
    /// `POST /repos/{owner}/{repo}/check-runs`; answers the new check run's id.
    async fn create_check_run(
        &self,
        installation_id: Option<i64>,
        repo: &RepoRef,
        body: &Value,
    ) -> Result<i64, ClientError>;

    /// `PATCH /repos/{owner}/{repo}/check-runs/{id}`.
    async fn update_check_run(
        &self,
        installation_id: Option<i64>,
        repo: &RepoRef,
        check_run_id: i64,
        body: &Value,
    ) -> Result<(), ClientError>;

    /// `POST /repos/{owner}/{repo}/statuses/{sha}`.
    async fn create_status(
        &self,
        installation_id: Option<i64>,
        repo: &RepoRef,
        sha: &str,
        body: &Value,
    ) -> Result<(), ClientError>;

    /// `POST /repos/{owner}/{repo}/issues/{number}/comments`; answers the comment's id.
    async fn create_comment(
        &self,
        installation_id: Option<i64>,
        repo: &RepoRef,
        pr_number: i64,
        body: &str,
    ) -> Result<i64, ClientError>;

    /// `PATCH /repos/{owner}/{repo}/issues/comments/{id}`.
    async fn update_comment(
        &self,
        installation_id: Option<i64>,
        repo: &RepoRef,
        comment_id: i64,
        body: &str,
    ) -> Result<(), ClientError>;
}
