//! The coding agent (the Codegen API) as the `codegen_trigger` handler needs it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ClientError;

/// Ask for a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRunRequest {
    /// What the agent should do.
    pub prompt: String,
    /// Free-form metadata stored with the run (task id, repository, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// The agent's repository id, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo_id: Option<i64>,
    /// Model override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `codegen` or `claude_code`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_type: Option<String>,
}

/// A pull request the agent opened or updated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentPullRequest {
    /// Id.
    pub id: Option<i64>,
    /// Title.
    pub title: Option<String>,
    /// Page.
    pub url: Option<String>,
    /// Branch.
    pub head_branch_name: Option<String>,
}

/// How a run stands, from its open-ended `status` string (compared case-insensitively).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Still going (ACTIVE, RUNNING, PENDING, EVALUATION, or no status yet).
    InProgress,
    /// Finished successfully (COMPLETE, COMPLETED).
    Completed,
    /// Finished unsuccessfully (ERROR, FAILED, TIMEOUT, MAX_ITERATIONS_REACHED, OUT_OF_TOKENS).
    Failed,
    /// Stopped by someone (CANCELLED, STOPPED).
    Cancelled,
    /// A status this version does not know; treated as still going and kept verbatim.
    Unknown,
}

impl RunOutcome {
    /// Classifies a run status.
    pub fn of(status: Option<&str>) -> Self {
        let Some(status) = status else {
            return RunOutcome::InProgress;
        };
        match status.trim().to_ascii_lowercase().as_str() {
            "active" | "running" | "pending" | "evaluation" | "queued" | "in_progress" => {
                RunOutcome::InProgress
            }
            "complete" | "completed" | "succeeded" | "success" => RunOutcome::Completed,
            "error"
            | "failed"
            | "failure"
            | "timeout"
            | "max_iterations_reached"
            | "out_of_tokens" => RunOutcome::Failed,
            "cancelled" | "canceled" | "stopped" => RunOutcome::Cancelled,
            _ => RunOutcome::Unknown,
        }
    }

    /// Whether the run has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunOutcome::Completed | RunOutcome::Failed | RunOutcome::Cancelled
        )
    }

    /// Label for metrics and output.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::InProgress => "in_progress",
            RunOutcome::Completed => "completed",
            RunOutcome::Failed => "failed",
            RunOutcome::Cancelled => "cancelled",
            RunOutcome::Unknown => "unknown",
        }
    }
}

/// A run as the agent API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRun {
    /// Run id.
    pub id: i64,
    /// Organisation.
    pub organization_id: Option<i64>,
    /// The status string as sent (open set).
    pub status: Option<String>,
    /// Creation time as sent.
    pub created_at: Option<String>,
    /// The run's page.
    pub web_url: Option<String>,
    /// The agent's result text.
    pub result: Option<String>,
    /// The agent's summary.
    pub summary: Option<String>,
    /// Pull requests it opened.
    #[serde(default)]
    pub github_pull_requests: Vec<AgentPullRequest>,
}

impl AgentRun {
    /// [`RunOutcome::of`] the status.
    pub fn outcome(&self) -> RunOutcome {
        RunOutcome::of(self.status.as_deref())
    }
}

/// What a look-up of recent runs by their metadata found
/// ([`CodingAgent::find_run_by_metadata`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RunSearch {
    /// Exactly one run carries the metadata.
    Found(AgentRun),
    /// Every run created since the given time was looked at, and none carries the metadata.
    NotFound,
    /// The search could not decide (more runs than it pages through, several matching runs);
    /// why, for a person.
    Inconclusive(String),
    /// This agent cannot list its runs.
    Unsupported,
}

/// The coding agent.
#[async_trait]
pub trait CodingAgent: Send + Sync + 'static {
    /// Starts a run.
    async fn create_run(&self, request: &AgentRunRequest) -> Result<AgentRun, ClientError>;

    /// Reads a run.
    async fn get_run(&self, run_id: i64) -> Result<AgentRun, ClientError>;

    /// Looks among the runs created since `created_since` for the one whose `metadata` holds
    /// every key of `metadata` with the same value. The `codegen_trigger` handler uses it to find
    /// a run whose creation answer it lost (the process died, or the answer never came), so it
    /// never creates a second one. The default cannot list runs: [`RunSearch::Unsupported`].
    async fn find_run_by_metadata(
        &self,
        metadata: &Map<String, Value>,
        created_since: DateTime<Utc>,
    ) -> Result<RunSearch, ClientError> {
        let _ = (metadata, created_since);
        Ok(RunSearch::Unsupported)
    }

    /// False when no credentials are configured: handlers then skip the run with a clear note.
    fn is_configured(&self) -> bool {
        true
    }
}
