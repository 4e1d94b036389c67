//! Shared test fixtures: a test RSA key, clocks, a recording observer and task contexts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_codegen::{
    CodegenClient, CodegenConfig, GitHubClient, GitHubConfig, Secret, Timeouts,
};
use orchestrator_core::breaker::{BreakerConfig, BreakerState};
use orchestrator_core::clock::ManualClock;
use orchestrator_core::error::TaskError;
use orchestrator_core::handler::{TaskContext, TaskProgress};
use orchestrator_core::observe::Observer;
use orchestrator_core::store::ExternalRun;
use orchestrator_core::task::{Task, TaskStatus, TaskType};
use serde_json::Value;
use uuid::Uuid;
use wiremock::MockServer;

/// A throw-away 2048-bit RSA key (generated with `openssl genrsa -traditional 2048`) used only
/// to sign test JWTs (the server's end-to-end tests pass the file's path as
/// `GITHUB_APP_PRIVATE_KEY`).
pub const TEST_APP_KEY: &str = include_str!("test_app_key.pem");

/// The public half of [`TEST_APP_KEY`], to verify the JWT a test server received.
pub const TEST_APP_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAsrszTQmVMkDi0ZtcR6I9
cj3BHAyi5mUkzZzU7vCMPA/vqIqYgElnVV6oIfRAzjGz+KdZZg5TrkVzbx+H4p/2
9YxvAL4DWIPU5+zRvSsCmFQUT7ffWSOLrD0F2XbNEOLQQFZmuegUuG4AtkSsTQ3W
T/Rn80U5hNRYJeppMIaWQ0hpRiL1UCVqqnMMjYXAe/g95oP+pC8ZTnefgKkEuSiK
gPHxGRf4ydMX1vuul5JSX8p7ffD4yV4Hial6TcdB/aQbpCc4ifd79vpVOnR1155/
zHmCyLTHYdXOgjD+uE2Y9X1hkXyk3XpPRPpSjOdTCnu0E2YsoerS+FWoAbmVg+dq
HQIDAQAB
-----END PUBLIC KEY-----
";

/// Everything the observer saw.
#[derive(Debug, Default)]
pub struct Recorder {
    pub github_requests: Mutex<Vec<(String, u16)>>,
    pub rate_limit: Mutex<Vec<u64>>,
    pub codegen_runs: Mutex<Vec<String>>,
    pub breakers: Mutex<Vec<(String, BreakerState)>>,
    pub reports: Mutex<Vec<(String, String)>>,
    pub budget_deferrals: Mutex<Vec<String>>,
}

impl Recorder {
    pub fn requests(&self) -> Vec<(String, u16)> {
        self.github_requests.lock().unwrap().clone()
    }
    pub fn remaining(&self) -> Vec<u64> {
        self.rate_limit.lock().unwrap().clone()
    }
    pub fn runs(&self) -> Vec<String> {
        self.codegen_runs.lock().unwrap().clone()
    }
    pub fn breaker_states(&self) -> Vec<(String, BreakerState)> {
        self.breakers.lock().unwrap().clone()
    }
}

impl Observer for Recorder {
    fn github_request(&self, endpoint: &str, status: u16) {
        self.github_requests
            .lock()
            .unwrap()
            .push((endpoint.to_owned(), status));
    }
    fn github_rate_limit(&self, remaining: u64) {
        self.rate_limit.lock().unwrap().push(remaining);
    }
    fn codegen_run(&self, outcome: &str) {
        self.codegen_runs.lock().unwrap().push(outcome.to_owned());
    }
    fn breaker(&self, name: &str, state: BreakerState) {
        self.breakers.lock().unwrap().push((name.to_owned(), state));
    }
    fn agent_budget_deferral(&self, scope: &str) {
        self.budget_deferrals.lock().unwrap().push(scope.to_owned());
    }
    fn github_report(&self, kind: &str, outcome: &str) {
        self.reports
            .lock()
            .unwrap()
            .push((kind.to_owned(), outcome.to_owned()));
    }
}

/// A clock at the real current time (JWTs are checked against it), moved by hand.
pub fn clock_now() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Utc::now()))
}

pub fn short_timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        total: Duration::from_secs(5),
    }
}

pub fn github_config(server: &MockServer) -> GitHubConfig {
    GitHubConfig {
        base_url: server.uri().parse().unwrap(),
        token: Some(Secret::new("ghp_testtoken")),
        timeouts: short_timeouts(),
        breaker: BreakerConfig {
            failure_threshold: 5,
            recovery: Duration::from_secs(30),
        },
        ..GitHubConfig::default()
    }
}

pub fn github(server: &MockServer) -> (GitHubClient, Arc<ManualClock>, Arc<Recorder>) {
    github_with(github_config(server))
}

pub fn github_with(config: GitHubConfig) -> (GitHubClient, Arc<ManualClock>, Arc<Recorder>) {
    let clock = clock_now();
    let recorder = Arc::new(Recorder::default());
    let client = GitHubClient::new(config, clock.clone(), recorder.clone()).unwrap();
    (client, clock, recorder)
}

pub fn codegen_config(server: &MockServer) -> CodegenConfig {
    CodegenConfig {
        base_url: server.uri().parse().unwrap(),
        token: Some(Secret::new("cg_testtoken")),
        org_id: Some(42),
        timeouts: short_timeouts(),
        ..CodegenConfig::default()
    }
}

pub fn codegen(server: &MockServer) -> (CodegenClient, Arc<ManualClock>, Arc<Recorder>) {
    let clock = clock_now();
    let recorder = Arc::new(Recorder::default());
    let client =
        CodegenClient::new(codegen_config(server), clock.clone(), recorder.clone()).unwrap();
    (client, clock, recorder)
}

/// Records `record_external_run` calls like a store would.
#[derive(Debug, Default)]
pub struct Progress {
    pub runs: Mutex<Vec<(Uuid, ExternalRun)>>,
}

#[async_trait]
impl TaskProgress for Progress {
    async fn record_external_run(&self, task_id: Uuid, run: &ExternalRun) -> Result<(), TaskError> {
        self.runs.lock().unwrap().push((task_id, run.clone()));
        Ok(())
    }
}

/// A running task of `task_type` on `octo/repo`.
pub fn task(task_type: TaskType, pr_number: Option<i64>, input: Value) -> Task {
    let now = Utc::now();
    Task {
        id: 1,
        task_id: Uuid::now_v7(),
        webhook_event_id: Some(7),
        parent_task_id: Some(Uuid::now_v7()),
        task_type,
        status: TaskStatus::Running,
        priority: 0,
        repository: Some("octo/repo".to_owned()),
        pr_number,
        branch: Some("feature".to_owned()),
        commit_sha: Some("abc123".to_owned()),
        config: serde_json::json!({}),
        input_data: input,
        output_data: None,
        started_at: Some(now),
        completed_at: None,
        error_message: None,
        retry_count: 0,
        max_retries: 3,
        attempts: 1,
        codegen_task_id: None,
        codegen_task_url: None,
        run_at: now,
        lease_owner: Some("w".to_owned()),
        lease_expires_at: None,
        trace_context: None,
        created_at: now,
        updated_at: now,
        superseded_by: None,
    }
}

pub fn ctx(task: Task, now: DateTime<Utc>, progress: Arc<Progress>) -> TaskContext {
    TaskContext::new(task, 1, Uuid::now_v7(), now, progress)
}
