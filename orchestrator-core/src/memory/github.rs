//! [`FakeGitHub`]: a [`GitHubApi`] with programmable answers, for handler tests and demos.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::{ClientError, ClientErrorKind};
use crate::github::{CheckRun, GitHubApi, PullRequestFile, RateLimitStatus, RepoRef};

/// An error to answer with: `ClientError` holds a boxed source and is not `Clone`, so the fake
/// keeps its parts and builds a fresh error per call.
#[derive(Debug, Clone)]
struct ErrorSpec {
    kind: ClientErrorKind,
    status: Option<u16>,
    message: String,
}

impl ErrorSpec {
    fn build(&self) -> ClientError {
        ClientError::new(self.kind, self.status, self.message.clone())
    }
}

#[derive(Debug, Default)]
struct Inner {
    pr_files: HashMap<(String, u64), Vec<PullRequestFile>>,
    check_runs: HashMap<(String, u64), CheckRun>,
    suite_runs: HashMap<(String, u64), Vec<CheckRun>>,
    rate_limit: Option<RateLimitStatus>,
    next_errors: VecDeque<ErrorSpec>,
    always_error: Option<ErrorSpec>,
    calls: Vec<(&'static str, Option<i64>)>,
}

/// A GitHub that answers from what a test told it.
///
/// Unknown pull requests, check runs and suites answer a permanent 404. Errors queued with
/// [`fail_next`](Self::fail_next) are returned (one per call, by any endpoint) before
/// [`fail_always`](Self::fail_always)'s error or the programmed answer. Every call is counted,
/// even a failed one.
#[derive(Debug, Default)]
pub struct FakeGitHub {
    inner: Mutex<Inner>,
}

impl FakeGitHub {
    /// A GitHub that knows nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The changed files of pull request `number` of `repo` (`owner/name`).
    pub fn set_pr_files(&self, repo: &str, number: u64, files: Vec<PullRequestFile>) -> &Self {
        self.lock()
            .pr_files
            .insert((repo.to_owned(), number), files);
        self
    }

    /// A check run of `repo`, found by its id.
    pub fn set_check_run(&self, repo: &str, run: CheckRun) -> &Self {
        self.lock()
            .check_runs
            .insert((repo.to_owned(), run.id), run);
        self
    }

    /// The check runs of check suite `suite_id` of `repo`.
    pub fn set_suite_runs(&self, repo: &str, suite_id: u64, runs: Vec<CheckRun>) -> &Self {
        self.lock()
            .suite_runs
            .insert((repo.to_owned(), suite_id), runs);
        self
    }

    /// The quota `rate_limit` reports (default: 5000 of 5000, reset in the far future).
    pub fn set_rate_limit(&self, status: RateLimitStatus) -> &Self {
        self.lock().rate_limit = Some(status);
        self
    }

    /// The next call (of any endpoint) fails with this error; queue several for several calls.
    pub fn fail_next(&self, kind: ClientErrorKind, status: Option<u16>, message: &str) -> &Self {
        self.lock().next_errors.push_back(ErrorSpec {
            kind,
            status,
            message: message.to_owned(),
        });
        self
    }

    /// Every call fails with this error (after queued ones) until [`recover`](Self::recover).
    pub fn fail_always(&self, kind: ClientErrorKind, status: Option<u16>, message: &str) -> &Self {
        self.lock().always_error = Some(ErrorSpec {
            kind,
            status,
            message: message.to_owned(),
        });
        self
    }

    /// Stops [`fail_always`](Self::fail_always) and drops queued errors.
    pub fn recover(&self) -> &Self {
        let mut inner = self.lock();
        inner.always_error = None;
        inner.next_errors.clear();
        self
    }

    /// Calls made so far, all endpoints.
    pub fn calls(&self) -> usize {
        self.lock().calls.len()
    }

    /// Calls made to one endpoint: `pull_request_files`, `check_run`, `check_suite_runs`,
    /// `rate_limit`.
    pub fn calls_to(&self, endpoint: &str) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|(e, _)| *e == endpoint)
            .count()
    }

    /// The installation id of the last call (`None` also when there was no call).
    pub fn last_installation_id(&self) -> Option<i64> {
        self.lock().calls.last().and_then(|(_, id)| *id)
    }

    /// Counts the call and returns the error to answer with, if any.
    fn enter(
        &self,
        endpoint: &'static str,
        installation_id: Option<i64>,
    ) -> Result<MutexGuard<'_, Inner>, ClientError> {
        let mut inner = self.lock();
        inner.calls.push((endpoint, installation_id));
        if let Some(err) = inner.next_errors.pop_front() {
            return Err(err.build());
        }
        if let Some(err) = &inner.always_error {
            return Err(err.build());
        }
        Ok(inner)
    }
}

fn not_found(what: String) -> ClientError {
    ClientError::new(
        ClientErrorKind::Permanent,
        Some(404),
        format!("{what} not found"),
    )
}

#[async_trait]
impl GitHubApi for FakeGitHub {
    async fn pull_request_files(
        &self,
        installation_id: Option<i64>,
        repo: &RepoRef,
        number: u64,
    ) -> Result<Vec<PullRequestFile>, ClientError> {
        let inner = self.enter("pull_request_files", installation_id)?;
        let name = repo.full_name();
        inner
            .pr_files
            .get(&(name.clone(), number))
            .cloned()
            .ok_or_else(|| not_found(format!("{name}#{number}")))
    }

    async fn check_run(
        &self,
        installation_id: Option<i64>,
        repo: &RepoRef,
        check_run_id: u64,
    ) -> Result<CheckRun, ClientError> {
        let inner = self.enter("check_run", installation_id)?;
        let name = repo.full_name();
        inner
            .check_runs
            .get(&(name.clone(), check_run_id))
            .cloned()
            .ok_or_else(|| not_found(format!("check run {check_run_id} of {name}")))
    }

    async fn check_suite_runs(
        &self,
        installation_id: Option<i64>,
        repo: &RepoRef,
        check_suite_id: u64,
    ) -> Result<Vec<CheckRun>, ClientError> {
        let inner = self.enter("check_suite_runs", installation_id)?;
        let name = repo.full_name();
        inner
            .suite_runs
            .get(&(name.clone(), check_suite_id))
            .cloned()
            .ok_or_else(|| not_found(format!("check suite {check_suite_id} of {name}")))
    }

    async fn rate_limit(&self) -> Result<RateLimitStatus, ClientError> {
        let inner = self.enter("rate_limit", None)?;
        Ok(inner.rate_limit.clone().unwrap_or(RateLimitStatus {
            limit: 5000,
            remaining: 5000,
            reset_at: DateTime::<Utc>::MAX_UTC,
        }))
    }
}
