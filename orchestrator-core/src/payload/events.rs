//! Typed views of the routed (and a few informational) events: only the fields routing and the
//! built-in handlers read. Every other field of GitHub's payload is skipped while parsing.
//!
//! The structs mirror GitHub's JSON nesting (`pull_request.head.ref`), so a reader can compare
//! them with GitHub's documentation line by line. Free-text and enum-like values (`state`,
//! `conclusion`, `action`) stay strings: a value GitHub adds tomorrow never breaks parsing.

use serde::{Deserialize, Deserializer};

/// `null` read as the type's default (GitHub sends `null` for some empty lists and flags).
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// What kind of event a delivery is, with the typed fields of that kind. More events may get a
/// typed view later, hence `non_exhaustive`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// `pull_request`.
    PullRequest(PullRequest),
    /// `check_run`.
    CheckRun(CheckRun),
    /// `check_suite`.
    CheckSuite(CheckSuite),
    /// `push`.
    Push(Push),
    /// `installation`.
    Installation(Installation),
    /// `installation_repositories`.
    InstallationRepositories(InstallationRepositories),
    /// `ping`.
    Ping(Ping),
    /// Any other event (or an informational event whose shape was unexpected): stored as sent,
    /// only the common fields (`action`, `repository`, `installation`, `sender`) are read.
    Other,
}

/// A branch tip: `head` or `base` of a pull request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct GitRef {
    /// Branch name.
    #[serde(rename = "ref", default)]
    pub git_ref: Option<String>,
    /// Commit SHA.
    #[serde(default)]
    pub sha: Option<String>,
}

/// `pull_request` of a `pull_request` event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullRequest {
    /// Pull request number (required: a `pull_request` event without it is refused).
    pub number: u64,
    /// `open` / `closed`.
    #[serde(default)]
    pub state: Option<String>,
    /// Whether it is a draft (absent or `null` reads as `false`).
    #[serde(default, deserialize_with = "null_default")]
    pub draft: bool,
    /// Whether it was merged (only meaningful once closed).
    #[serde(default)]
    pub merged: Option<bool>,
    /// Title.
    #[serde(default)]
    pub title: Option<String>,
    /// Page on GitHub.
    #[serde(default)]
    pub html_url: Option<String>,
    /// Head branch and commit.
    #[serde(default, deserialize_with = "null_default")]
    pub head: GitRef,
    /// Base branch and commit.
    #[serde(default, deserialize_with = "null_default")]
    pub base: GitRef,
}

/// An entry of `check_run.pull_requests` / `check_suite.pull_requests`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullRequestRef {
    /// Pull request number.
    pub number: u64,
    /// Head branch and commit.
    #[serde(default, deserialize_with = "null_default")]
    pub head: GitRef,
    /// Base branch and commit.
    #[serde(default, deserialize_with = "null_default")]
    pub base: GitRef,
}

/// `check_run.output`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CheckOutput {
    /// Output title.
    #[serde(default)]
    pub title: Option<String>,
    /// Output summary.
    #[serde(default)]
    pub summary: Option<String>,
}

/// `check_run.check_suite`, as much as routing needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CheckSuiteSummary {
    /// The branch the suite ran on.
    #[serde(default)]
    pub head_branch: Option<String>,
}

/// `app` of a check run or check suite: the GitHub App that created it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct AppRef {
    /// The App's id.
    #[serde(default)]
    pub id: u64,
    /// The App's slug.
    #[serde(default)]
    pub slug: Option<String>,
}

/// `check_run` of a `check_run` event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckRun {
    /// Check run id (required).
    pub id: u64,
    /// Check name (required).
    pub name: String,
    /// `queued` / `in_progress` / `completed` / ...
    #[serde(default)]
    pub status: Option<String>,
    /// `success` / `failure` / `cancelled` / `timed_out` / ... (`null` until completed).
    #[serde(default)]
    pub conclusion: Option<String>,
    /// Commit.
    #[serde(default)]
    pub head_sha: Option<String>,
    /// Page on GitHub.
    #[serde(default)]
    pub html_url: Option<String>,
    /// Output title and summary.
    #[serde(default, deserialize_with = "null_default")]
    pub output: CheckOutput,
    /// The suite it belongs to.
    #[serde(default, deserialize_with = "null_default")]
    pub check_suite: CheckSuiteSummary,
    /// Pull requests whose head is this commit.
    #[serde(default, deserialize_with = "null_default")]
    pub pull_requests: Vec<PullRequestRef>,
    /// The App that created it.
    #[serde(default)]
    pub app: Option<AppRef>,
    /// The creator's own id for it (ours: the task id).
    #[serde(default)]
    pub external_id: Option<String>,
    /// `requested_action.identifier` of a `requested_action` delivery (a top-level field of
    /// the payload, put here by the parser).
    #[serde(skip)]
    pub requested_action: Option<String>,
}

/// `check_suite` of a `check_suite` event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckSuite {
    /// Check suite id (required).
    pub id: u64,
    /// `queued` / `in_progress` / `completed` / ...
    #[serde(default)]
    pub status: Option<String>,
    /// `success` / `failure` / `cancelled` / `timed_out` / ...
    #[serde(default)]
    pub conclusion: Option<String>,
    /// Commit.
    #[serde(default)]
    pub head_sha: Option<String>,
    /// Branch the suite ran on.
    #[serde(default)]
    pub head_branch: Option<String>,
    /// Pull requests whose head is this commit.
    #[serde(default, deserialize_with = "null_default")]
    pub pull_requests: Vec<PullRequestRef>,
    /// The App that created it.
    #[serde(default)]
    pub app: Option<AppRef>,
}

/// Who pushed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Pusher {
    /// Name (a login for users, may be absent for deploy keys).
    #[serde(default)]
    pub name: Option<String>,
}

/// One commit of a push.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Commit {
    /// SHA.
    pub id: String,
    /// Full message.
    #[serde(default, deserialize_with = "null_default")]
    pub message: String,
    /// Files added.
    #[serde(default, deserialize_with = "null_default")]
    pub added: Vec<String>,
    /// Files removed.
    #[serde(default, deserialize_with = "null_default")]
    pub removed: Vec<String>,
    /// Files modified.
    #[serde(default, deserialize_with = "null_default")]
    pub modified: Vec<String>,
}

/// A `push` event (its `repository` is in [`super::ParsedEvent`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Push {
    /// Full ref, e.g. `refs/heads/main` or `refs/tags/v1` (required).
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Commit before the push.
    #[serde(default)]
    pub before: Option<String>,
    /// Commit after the push (all zeros for a deletion).
    #[serde(default)]
    pub after: Option<String>,
    /// The ref was created.
    #[serde(default, deserialize_with = "null_default")]
    pub created: bool,
    /// The ref was deleted.
    #[serde(default, deserialize_with = "null_default")]
    pub deleted: bool,
    /// It was a force push.
    #[serde(default, deserialize_with = "null_default")]
    pub forced: bool,
    /// Compare URL.
    #[serde(default)]
    pub compare: Option<String>,
    /// Who pushed.
    #[serde(default, deserialize_with = "null_default")]
    pub pusher: Pusher,
    /// The pushed commits (GitHub sends at most 20).
    #[serde(default, deserialize_with = "null_default")]
    pub commits: Vec<Commit>,
}

impl Push {
    /// The branch name when the ref is a branch (`refs/heads/<name>`).
    pub fn branch(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/heads/")
    }
}

/// A repository named in an installation event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RepositoryRef {
    /// `owner/name`.
    pub full_name: String,
}

/// The account an installation belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Account {
    /// Login of the user or organisation.
    #[serde(default)]
    pub login: Option<String>,
}

/// `installation` of an `installation` event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct InstallationInfo {
    /// Installation id.
    #[serde(default)]
    pub id: Option<i64>,
    /// The account it is installed on.
    #[serde(default, deserialize_with = "null_default")]
    pub account: Account,
}

/// An `installation` event (`created`, `deleted`, `suspend`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installation {
    /// The account it is installed on.
    pub account: Option<String>,
    /// Repositories it covers (sent on `created`).
    pub repositories: Vec<String>,
}

/// An `installation_repositories` event (`added`, `removed`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallationRepositories {
    /// `all` or `selected`.
    pub repository_selection: Option<String>,
    /// Repositories added.
    pub added: Vec<String>,
    /// Repositories removed.
    pub removed: Vec<String>,
}

/// A `ping` event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ping {
    /// GitHub's zen phrase, echoed back.
    pub zen: Option<String>,
    /// The webhook's id.
    pub hook_id: Option<i64>,
}
