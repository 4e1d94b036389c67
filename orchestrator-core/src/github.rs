//! The GitHub REST API as the handlers need it.
//!
//! Only the calls the built-in handlers make; the reqwest implementation (token or GitHub App
//! authentication, rate-limit accounting, circuit breaker) lives in `orchestrator-codegen`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ClientError;

/// `owner/name` of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RepoRef {
    /// The owner (user or organisation) login.
    pub owner: String,
    /// The repository name.
    pub name: String,
}

impl RepoRef {
    /// Splits `owner/name`; `None` unless both parts are non-empty and there is one slash.
    pub fn parse(full_name: &str) -> Option<Self> {
        let (owner, name) = full_name.split_once('/')?;
        if owner.is_empty() || name.is_empty() || name.contains('/') {
            return None;
        }
        Some(Self {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }

    /// `owner/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

/// One changed file of a pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestFile {
    /// Path in the repository.
    pub filename: String,
    /// `added`, `modified`, `removed`, `renamed`, ... (open set).
    pub status: String,
    /// Lines added.
    pub additions: u64,
    /// Lines deleted.
    pub deletions: u64,
    /// Lines changed.
    pub changes: u64,
}

/// A check run as the GitHub API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRun {
    /// Check run id.
    pub id: u64,
    /// Check name (e.g. `unit-tests`).
    pub name: String,
    /// `queued`, `in_progress`, `completed` (open set).
    pub status: String,
    /// `success`, `failure`, `timed_out`, ... (open set); none until completed.
    pub conclusion: Option<String>,
    /// The run's page on GitHub.
    pub html_url: Option<String>,
    /// The output's title.
    pub output_title: Option<String>,
    /// The output's summary.
    pub output_summary: Option<String>,
    /// Commit it ran on.
    pub head_sha: Option<String>,
}

/// The core REST quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitStatus {
    /// Requests allowed per window.
    pub limit: u64,
    /// Requests left in this window.
    pub remaining: u64,
    /// When the window resets.
    pub reset_at: DateTime<Utc>,
}

/// The GitHub calls of the handlers. `installation_id` picks the App installation token to use
/// (ignored with a personal token).
#[async_trait]
pub trait GitHubApi: Send + Sync + 'static {
    /// All changed files of a pull request (every page).
    async fn pull_request_files(
        &self,
        installation_id: Option<i64>,
        repo: &RepoRef,
        number: u64,
    ) -> Result<Vec<PullRequestFile>, ClientError>;

    /// One check run.
    async fn check_run(
        &self,
        installation_id: Option<i64>,
        repo: &RepoRef,
        check_run_id: u64,
    ) -> Result<CheckRun, ClientError>;

    /// The check runs of a check suite (every page).
    async fn check_suite_runs(
        &self,
        installation_id: Option<i64>,
        repo: &RepoRef,
        check_suite_id: u64,
    ) -> Result<Vec<CheckRun>, ClientError>;

    /// The quota, for health checks.
    async fn rate_limit(&self) -> Result<RateLimitStatus, ClientError>;
}
