//! [`FakeAgent`]: a [`CodingAgent`] with scripted run statuses, for handler tests and demos.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::agent::{AgentPullRequest, AgentRun, AgentRunRequest, CodingAgent, RunSearch};
use crate::error::{ClientError, ClientErrorKind};

#[derive(Debug, Clone)]
struct ErrorSpec {
    kind: ClientErrorKind,
    status: Option<u16>,
    message: String,
}

#[derive(Debug)]
struct Inner {
    configured: bool,
    next_id: i64,
    runs: HashMap<i64, AgentRun>,
    script: VecDeque<String>,
    requests: Vec<AgentRunRequest>,
    get_calls: usize,
    create_errors: VecDeque<ErrorSpec>,
    get_errors: VecDeque<ErrorSpec>,
    result: Option<String>,
    pull_requests: Vec<AgentPullRequest>,
    /// Each created run's metadata, in creation order.
    metadata: Vec<(i64, Option<Value>)>,
    lost_answers: usize,
    find_errors: VecDeque<ErrorSpec>,
    find_calls: usize,
    listing: bool,
}

/// A coding agent that answers from a script.
///
/// `create_run` stores the request and answers a run with id 1001, 1002, ... in status
/// `ACTIVE` and `web_url` `https://agent.test/runs/<id>`. Each `get_run` of a known run takes
/// the next status of the script ([`script_statuses`](Self::script_statuses)); the last one
/// repeats (`ACTIVE` when there is no script). A run read in a completed status carries the
/// result and pull requests set with [`complete_with`](Self::complete_with). Unknown run ids
/// answer a permanent 404. `find_run_by_metadata` looks through the runs created so far (every
/// one counts as recent) and finds the one whose request metadata holds the given keys.
#[derive(Debug)]
pub struct FakeAgent {
    inner: Mutex<Inner>,
}

impl Default for FakeAgent {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeAgent {
    /// A configured agent with no script.
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                configured: true,
                next_id: 1001,
                runs: HashMap::new(),
                script: VecDeque::new(),
                requests: Vec::new(),
                get_calls: 0,
                create_errors: VecDeque::new(),
                get_errors: VecDeque::new(),
                result: None,
                pull_requests: Vec::new(),
                metadata: Vec::new(),
                lost_answers: 0,
                find_errors: VecDeque::new(),
                find_calls: 0,
                listing: true,
            }),
        }
    }

    /// An agent without credentials: `is_configured()` is false (calls still answer).
    pub fn unconfigured() -> Self {
        let agent = Self::new();
        agent.lock().configured = false;
        agent
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The statuses successive `get_run` calls report, e.g. `["RUNNING", "COMPLETE"]`.
    pub fn script_statuses<S: Into<String>>(&self, statuses: impl IntoIterator<Item = S>) -> &Self {
        self.lock().script = statuses.into_iter().map(Into::into).collect();
        self
    }

    /// The `result` and pull requests of a run read in a completed status.
    pub fn complete_with(&self, result: &str, pull_requests: Vec<AgentPullRequest>) -> &Self {
        let mut inner = self.lock();
        inner.result = Some(result.to_owned());
        inner.pull_requests = pull_requests;
        self
    }

    /// The next `create_run` fails with this error (queue several for several calls).
    pub fn fail_next_create(
        &self,
        kind: ClientErrorKind,
        status: Option<u16>,
        message: &str,
    ) -> &Self {
        self.lock().create_errors.push_back(ErrorSpec {
            kind,
            status,
            message: message.to_owned(),
        });
        self
    }

    /// The next `get_run` fails with this error (queue several for several calls).
    pub fn fail_next_get(
        &self,
        kind: ClientErrorKind,
        status: Option<u16>,
        message: &str,
    ) -> &Self {
        self.lock().get_errors.push_back(ErrorSpec {
            kind,
            status,
            message: message.to_owned(),
        });
        self
    }

    /// The next `create_run` creates its run but its answer is lost: it fails with a permanent
    /// error marked [outcome unknown](ClientError::is_outcome_unknown), as a timeout after the
    /// request was sent would.
    pub fn lose_next_create_answer(&self) -> &Self {
        self.lock().lost_answers += 1;
        self
    }

    /// The next `find_run_by_metadata` fails with this error (queue several for several calls).
    pub fn fail_next_find(
        &self,
        kind: ClientErrorKind,
        status: Option<u16>,
        message: &str,
    ) -> &Self {
        self.lock().find_errors.push_back(ErrorSpec {
            kind,
            status,
            message: message.to_owned(),
        });
        self
    }

    /// An agent that cannot list its runs: `find_run_by_metadata` answers `Unsupported`.
    pub fn without_listing(&self) -> &Self {
        self.lock().listing = false;
        self
    }

    /// Runs created so far (answered or not).
    pub fn runs_created(&self) -> usize {
        self.lock().runs.len()
    }

    /// `find_run_by_metadata` calls so far.
    pub fn find_calls(&self) -> usize {
        self.lock().find_calls
    }

    /// `create_run` calls so far, failed ones included.
    pub fn create_calls(&self) -> usize {
        self.lock().requests.len()
    }

    /// `get_run` calls so far, failed ones included.
    pub fn get_calls(&self) -> usize {
        self.lock().get_calls
    }

    /// The requests `create_run` received, in order.
    pub fn requests(&self) -> Vec<AgentRunRequest> {
        self.lock().requests.clone()
    }
}

#[async_trait]
impl CodingAgent for FakeAgent {
    async fn create_run(&self, request: &AgentRunRequest) -> Result<AgentRun, ClientError> {
        let mut inner = self.lock();
        inner.requests.push(request.clone());
        if let Some(err) = inner.create_errors.pop_front() {
            return Err(ClientError::new(err.kind, err.status, err.message));
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let run = AgentRun {
            id,
            organization_id: Some(1),
            status: Some("ACTIVE".to_owned()),
            created_at: None,
            web_url: Some(format!("https://agent.test/runs/{id}")),
            result: None,
            summary: None,
            github_pull_requests: Vec::new(),
        };
        inner.runs.insert(id, run.clone());
        inner.metadata.push((id, request.metadata.clone()));
        if inner.lost_answers > 0 {
            inner.lost_answers -= 1;
            return Err(ClientError::new(
                ClientErrorKind::Permanent,
                None,
                "create run: request timed out after it was sent",
            )
            .with_outcome_unknown());
        }
        Ok(run)
    }

    async fn find_run_by_metadata(
        &self,
        metadata: &Map<String, Value>,
        _created_since: DateTime<Utc>,
    ) -> Result<RunSearch, ClientError> {
        let mut inner = self.lock();
        inner.find_calls += 1;
        if let Some(err) = inner.find_errors.pop_front() {
            return Err(ClientError::new(err.kind, err.status, err.message));
        }
        if !inner.listing {
            return Ok(RunSearch::Unsupported);
        }
        let matching: Vec<i64> = inner
            .metadata
            .iter()
            .filter(|(_, stored)| {
                metadata
                    .iter()
                    .all(|(k, v)| stored.as_ref().and_then(|m| m.get(k)) == Some(v))
            })
            .map(|(id, _)| *id)
            .collect();
        Ok(match matching.as_slice() {
            [] => RunSearch::NotFound,
            [id] => match inner.runs.get(id) {
                Some(run) => RunSearch::Found(run.clone()),
                None => RunSearch::NotFound,
            },
            _ => RunSearch::Inconclusive(format!("{} runs match", matching.len())),
        })
    }

    async fn get_run(&self, run_id: i64) -> Result<AgentRun, ClientError> {
        let mut inner = self.lock();
        inner.get_calls += 1;
        if let Some(err) = inner.get_errors.pop_front() {
            return Err(ClientError::new(err.kind, err.status, err.message));
        }
        if !inner.runs.contains_key(&run_id) {
            return Err(ClientError::new(
                ClientErrorKind::Permanent,
                Some(404),
                format!("run {run_id} not found"),
            ));
        }
        let status = if inner.script.len() > 1 {
            inner.script.pop_front()
        } else {
            inner.script.front().cloned()
        };
        let result = inner.result.clone();
        let pull_requests = inner.pull_requests.clone();
        let Some(run) = inner.runs.get_mut(&run_id) else {
            return Err(ClientError::new(
                ClientErrorKind::Permanent,
                Some(404),
                format!("run {run_id} not found"),
            ));
        };
        if let Some(status) = status {
            run.status = Some(status);
        }
        if run.outcome() == crate::agent::RunOutcome::Completed {
            run.result = result;
            run.github_pull_requests = pull_requests;
        }
        Ok(run.clone())
    }

    fn is_configured(&self) -> bool {
        self.lock().configured
    }
}
