//! Issue 13, through the worker and the in-memory store: an agent run that ends in a failure
//! status fails its `codegen_trigger` task (no automatic retry, the agent's status and result
//! in `error_message`); an operator's retry asks for exactly one new run and follows it, the old
//! run kept in the output's `history`; a run stopped by a person cancels the task.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use orchestrator_codegen::HandlerConfig;
use orchestrator_core::clock::{Clock, ManualClock};
use orchestrator_core::engine::{Worker, WorkerConfig};
use orchestrator_core::event::NewEvent;
use orchestrator_core::handler::HandlerRegistry;
use orchestrator_core::memory::{FakeAgent, FakeGitHub, MemoryStore};
use orchestrator_core::observe::NoopObserver;
use orchestrator_core::queue::StoreQueue;
use orchestrator_core::store::agent_run::{AgentRunState, AgentRunStore};
use orchestrator_core::store::{EventStore, RetryOutcome, TaskStore};
use orchestrator_core::task::{ExecutionStatus, NewTask, Task, TaskSpec, TaskStatus, TaskType};
use serde_json::json;
use uuid::Uuid;

struct Rig {
    clock: Arc<ManualClock>,
    store: Arc<MemoryStore>,
    agent: Arc<FakeAgent>,
    worker: Worker,
    task_id: Uuid,
}

/// A worker over a memory store with one `codegen_trigger` task (3 retries allowed) whose
/// agent reads back `statuses` in turn.
async fn rig(statuses: &[&str]) -> Rig {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let store = Arc::new(MemoryStore::new());
    let agent = Arc::new(FakeAgent::new());
    agent.script_statuses(statuses.iter().copied());
    agent.complete_with("opened a fix", Vec::new());
    let mut registry = HandlerRegistry::new();
    orchestrator_codegen::register_handlers(
        &mut registry,
        Arc::new(FakeGitHub::new()),
        agent.clone(),
        store.clone(),
        HandlerConfig::default(),
        Arc::new(NoopObserver),
    );
    let worker = Worker::new(
        Arc::new(StoreQueue::new(store.clone())),
        store.clone(),
        registry,
        clock.clone(),
        WorkerConfig::default(),
    );
    let mut spec = TaskSpec::new(TaskType::CODEGEN_TRIGGER);
    spec.repository = Some("octo/repo".into());
    spec.pr_number = Some(12);
    spec.commit_sha = Some("abc123".into());
    spec.input_data =
        json!({"source_task_type": "pull_request_analysis", "reasons": ["ready_for_review"]});
    let new = NewTask::new(spec, 3, clock.now());
    let task_id = new.task_id;
    let event = NewEvent {
        delivery_id: "d-1".into(),
        event_type: "pull_request".into(),
        action: Some("opened".into()),
        source: "github".into(),
        repository: Some("octo/repo".into()),
        installation_id: None,
        payload: bytes::Bytes::from_static(b"{}"),
        headers: vec![],
        received_at: clock.now(),
        parse_error: None,
        prepared: Default::default(),
    };
    store.ingest(event, vec![new]).await.unwrap();
    Rig {
        clock,
        store,
        agent,
        worker,
        task_id,
    }
}

impl Rig {
    async fn task(&self) -> Task {
        self.store
            .get_task(self.task_id)
            .await
            .unwrap()
            .unwrap()
            .task
    }

    /// Runs the worker once now, then once after the first poll wait.
    async fn create_then_poll(&self) {
        assert_eq!(self.worker.run_once().await.unwrap(), 1, "creation");
        self.clock.advance(Duration::from_secs(30));
        assert_eq!(self.worker.run_once().await.unwrap(), 1, "poll");
    }

    async fn ledger(&self) -> Vec<(AgentRunState, Option<String>)> {
        self.store
            .agent_runs(self.task_id)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.state, r.run_id))
            .collect()
    }
}

#[tokio::test]
async fn a_failed_run_fails_the_task_and_a_retry_asks_exactly_once_again() {
    let rig = rig(&["FAILED", "COMPLETE"]).await;
    rig.create_then_poll().await;

    let task = rig.task().await;
    assert_eq!(task.status, TaskStatus::Failed, "{task:?}");
    assert_eq!(task.retry_count, 0, "a run failure is not retried");
    let error = task.error_message.clone().unwrap_or_default();
    assert!(
        error.contains("1001") && error.contains("FAILED") && error.contains("retry the task"),
        "{error}"
    );
    let output = task.output_data.clone().unwrap();
    assert_eq!(
        (
            &output["status"],
            &output["agent_status"],
            &output["run_id"]
        ),
        (&json!("failed"), &json!("FAILED"), &json!(1001))
    );
    let detail = rig.store.get_task(rig.task_id).await.unwrap().unwrap();
    let last = detail.executions.last().unwrap();
    assert_eq!(last.status, ExecutionStatus::Failed);
    rig.clock.advance(Duration::from_secs(3600));
    assert_eq!(
        rig.worker.run_once().await.unwrap(),
        0,
        "no automatic retry"
    );
    assert_eq!(rig.agent.create_calls(), 1);

    let RetryOutcome::Scheduled(_) = rig
        .store
        .retry_task(rig.task_id, rig.clock.now())
        .await
        .unwrap()
    else {
        panic!("a failed task can be retried")
    };
    rig.create_then_poll().await;

    let task = rig.task().await;
    assert_eq!(task.status, TaskStatus::Completed, "{task:?}");
    assert_eq!(rig.agent.create_calls(), 2, "the retry asked exactly once");
    assert_eq!(task.codegen_task_id.as_deref(), Some("1002"));
    let output = task.output_data.unwrap();
    assert_eq!(
        (&output["status"], &output["run_id"]),
        (&json!("completed"), &json!(1002))
    );
    let history = output["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "{output:#}");
    assert_eq!(
        (&history[0]["run_id"], &history[0]["agent_status"]),
        (&json!(1001), &json!("FAILED"))
    );
    assert_eq!(
        rig.ledger().await,
        [
            (AgentRunState::Released, Some("1001".to_owned())),
            (AgentRunState::Created, Some("1002".to_owned())),
        ]
    );
}

#[tokio::test]
async fn a_run_stopped_by_a_person_cancels_the_task_and_a_retry_asks_again() {
    let rig = rig(&["STOPPED", "RUNNING"]).await;
    rig.create_then_poll().await;

    let task = rig.task().await;
    assert_eq!(task.status, TaskStatus::Cancelled, "{task:?}");
    assert!(
        task.error_message
            .as_deref()
            .is_some_and(|e| e.contains("stopped (STOPPED)")),
        "{task:?}"
    );
    let detail = rig.store.get_task(rig.task_id).await.unwrap().unwrap();
    assert_eq!(
        detail.executions.last().unwrap().status,
        ExecutionStatus::Cancelled
    );

    rig.store
        .retry_task(rig.task_id, rig.clock.now())
        .await
        .unwrap();
    rig.create_then_poll().await;
    let task = rig.task().await;
    assert_eq!(task.status, TaskStatus::Pending, "following run 1002");
    assert_eq!(task.output_data.as_ref().unwrap()["run_id"], json!(1002));
    assert_eq!(
        task.output_data.as_ref().unwrap()["history"][0]["run_id"],
        json!(1001)
    );
    assert_eq!(rig.agent.create_calls(), 2);
    // Another attempt while the run goes on follows it; it never asks a third time.
    rig.clock.advance(Duration::from_secs(60));
    assert_eq!(rig.worker.run_once().await.unwrap(), 1);
    assert_eq!(rig.agent.create_calls(), 2);
}
