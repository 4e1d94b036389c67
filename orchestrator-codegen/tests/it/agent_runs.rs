//! `codegen_trigger` with the agent-run ledger against a wiremock Codegen: a lost creation answer
//! is found by its metadata in the run list and followed (never asked for again); a run the list
//! does not show, or a list that cannot be read, stops the task for a person; a head SHA gets
//! one run unless forced; a refused creation closes its intent.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use orchestrator_codegen::handlers::CodegenTrigger;
use orchestrator_codegen::{CodegenClient, HandlerConfig};
use orchestrator_core::error::{StoreError, StoreErrorKind, TaskErrorKind};
use orchestrator_core::handler::{HandlerOutcome, TaskContext, TaskHandler};
use orchestrator_core::memory::MemoryStore;
use orchestrator_core::queue::StoreQueue;
use orchestrator_core::store::agent_run::{
    AgentRunPolicy, AgentRunRecord, AgentRunState, AgentRunStore, RunIntent,
};
use orchestrator_core::task::{Task, TaskType};
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Progress, Recorder, clock_now, codegen_config, task};

const CREATE: &str = "/v1/organizations/42/agent/run";
const LIST: &str = "/v1/organizations/42/agent/runs";

struct Fixture {
    handler: CodegenTrigger,
    ledger: Arc<MemoryStore>,
    recorder: Arc<Recorder>,
    progress: Arc<Progress>,
}

fn fixture(server: &MockServer, create_timeout: Duration) -> Fixture {
    let mut config = codegen_config(server);
    config.timeouts.total = create_timeout;
    let recorder = Arc::new(Recorder::default());
    let client = CodegenClient::new(config, clock_now(), recorder.clone()).unwrap();
    let ledger = Arc::new(MemoryStore::new());
    let handler = CodegenTrigger::new(
        Arc::new(client),
        ledger.clone(),
        Arc::new(HandlerConfig::default()),
        recorder.clone(),
    );
    Fixture {
        handler,
        ledger,
        recorder,
        progress: Arc::new(Progress::default()),
    }
}

impl Fixture {
    async fn handle(
        &self,
        task: &Task,
        attempt: u32,
        now: DateTime<Utc>,
    ) -> Result<HandlerOutcome, orchestrator_core::error::TaskError> {
        let ctx = TaskContext::new(
            task.clone(),
            attempt,
            Uuid::now_v7(),
            now,
            self.progress.clone(),
        );
        self.handler.handle(&ctx).await
    }

    async fn intents(&self, task: &Task) -> Vec<AgentRunRecord> {
        self.ledger.agent_runs(task.task_id).await.unwrap()
    }
}

/// A `codegen_trigger` task for pull request #12 at head `sha`.
fn trigger(sha: &str, force: bool) -> Task {
    let mut t = task(
        TaskType::CODEGEN_TRIGGER,
        Some(12),
        json!({"source_task_type": "pull_request_analysis", "reasons": ["ready_for_review"]}),
    );
    t.commit_sha = Some(sha.to_owned());
    if force {
        t.config = json!({"force": true});
    }
    t
}

fn run_body(id: i64, status: &str, created: DateTime<Utc>, metadata: Value) -> Value {
    json!({"id": id, "organization_id": 42, "status": status, "created_at": created.to_rfc3339(),
           "web_url": format!("https://codegen.com/agent/trace/{id}"), "metadata": metadata})
}

async fn mount_list(server: &MockServer, items: Vec<Value>) {
    Mock::given(method("GET"))
        .and(path(LIST))
        .and(query_param("skip", "0"))
        .and(query_param("limit", "100"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"items": items, "total": 2, "page": 1, "size": 100, "pages": 1}),
            ),
        )
        .mount(server)
        .await;
}

async fn posts(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| r.body_json().unwrap())
        .collect()
}

#[tokio::test]
async fn a_lost_creation_answer_is_found_by_its_metadata_and_followed() {
    let server = MockServer::start().await;
    let now = Utc::now();
    // Codegen creates the run, but its answer comes after the client gave up.
    Mock::given(method("POST"))
        .and(path(CREATE))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(run_body(501, "ACTIVE", now, json!({})))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let f = fixture(&server, Duration::from_millis(300));
    let task = trigger("abc123", false);

    let err = f.handle(&task, 1, now).await.unwrap_err();
    assert!(
        matches!(err.kind, TaskErrorKind::Deferred { .. }),
        "a lost answer is looked up next, not failed: {err:?}"
    );
    let intents = f.intents(&task).await;
    assert_eq!(intents.len(), 1);
    assert_eq!(intents[0].state, AgentRunState::Pending);
    let sent = posts(&server).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["metadata"]["task_id"], json!(task.task_id));
    assert_eq!(
        sent[0]["metadata"]["agent_run_intent"],
        json!(intents[0].intent_id)
    );
    assert_eq!(sent[0]["metadata"]["head_sha"], json!("abc123"));

    // The run list shows it (newest first, beside another task's run).
    mount_list(
        &server,
        vec![
            run_body(502, "ACTIVE", now, json!({"task_id": Uuid::now_v7()})),
            run_body(501, "RUNNING", now, sent[0]["metadata"].clone()),
        ],
    )
    .await;
    Mock::given(method("GET"))
        .and(path(format!("{CREATE}/501")))
        .respond_with(ResponseTemplate::new(200).set_body_json(run_body(
            501,
            "RUNNING",
            now,
            json!({}),
        )))
        .mount(&server)
        .await;
    let later = now + chrono::Duration::seconds(30);
    let outcome = f.handle(&task, 2, later).await.unwrap();
    let HandlerOutcome::Waiting {
        output: Some(state),
        ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(state["run_id"], json!(501));
    assert_eq!(posts(&server).await.len(), 1, "never asked for again");
    let intents = f.intents(&task).await;
    assert_eq!(
        (intents[0].state, intents[0].run_id.as_deref()),
        (AgentRunState::Created, Some("501"))
    );
    let recorded = f.progress.runs.lock().unwrap().clone();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        (recorded[0].0, recorded[0].1.id.as_str()),
        (task.task_id, "501")
    );
    assert_eq!(f.recorder.runs(), ["reconciled"]);
}

/// An intent stored by a worker that died before (or after) sending: what the next attempt finds.
async fn stored_intent(f: &Fixture, task: &Task, at: DateTime<Utc>) -> AgentRunRecord {
    let intent = RunIntent {
        task_id: task.task_id,
        attempt: 1,
        repository: task.repository.clone(),
        pr_number: task.pr_number,
        head_sha: task.commit_sha.clone(),
        force: false,
    };
    match f
        .ledger
        .admit(&intent, &AgentRunPolicy::default(), at)
        .await
        .unwrap()
    {
        orchestrator_core::store::agent_run::Admission::Admitted(record) => record,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_run_the_list_does_not_show_stops_the_task_for_a_person() {
    let server = MockServer::start().await;
    let t0 = Utc::now();
    let f = fixture(&server, Duration::from_secs(5));
    let task = trigger("abc123", false);
    let intent = stored_intent(&f, &task, t0).await;
    // Another task's run, and an old run of this task's metadata from another intent.
    mount_list(
        &server,
        vec![
            run_body(600, "ACTIVE", t0, json!({"task_id": Uuid::now_v7()})),
            run_body(
                599,
                "COMPLETE",
                t0 - chrono::Duration::hours(3),
                json!({"task_id": task.task_id, "agent_run_intent": Uuid::now_v7()}),
            ),
        ],
    )
    .await;

    // Within the grace period the list may lag behind: look again later.
    let early = f
        .handle(&task, 2, t0 + chrono::Duration::seconds(10))
        .await
        .unwrap_err();
    assert!(
        matches!(early.kind, TaskErrorKind::Deferred { .. }),
        "{early:?}"
    );
    // After it: stop for a person, with a message that says what to do.
    let err = f
        .handle(&task, 3, t0 + chrono::Duration::minutes(2))
        .await
        .unwrap_err();
    assert_eq!(err.kind, TaskErrorKind::Permanent);
    for needle in [
        "needs attention",
        &intent.intent_id.to_string(),
        &task.task_id.to_string(),
        &format!("POST /api/v1/tasks/{}/retry", task.task_id),
        "creates a new run",
        &t0.to_rfc3339(),
    ] {
        assert!(err.message.contains(needle), "{needle:?} not in {err}");
    }
    assert_eq!(f.intents(&task).await[0].state, AgentRunState::Unresolved);
    assert!(posts(&server).await.is_empty(), "nothing was created");
    assert_eq!(f.recorder.runs(), ["needs_attention"]);
}

#[tokio::test]
async fn while_the_run_list_fails_the_lookup_waits_and_then_stops_for_a_person() {
    let server = MockServer::start().await;
    let t0 = Utc::now();
    let f = fixture(&server, Duration::from_secs(5));
    let task = trigger("abc123", false);
    stored_intent(&f, &task, t0).await;
    Mock::given(method("GET"))
        .and(path(LIST))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "40"))
        .mount(&server)
        .await;

    let err = f
        .handle(&task, 2, t0 + chrono::Duration::minutes(5))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        TaskErrorKind::Deferred {
            after: Duration::from_secs(40)
        }
    );
    assert_eq!(f.intents(&task).await[0].state, AgentRunState::Pending);
    let err = f
        .handle(&task, 2, t0 + chrono::Duration::hours(2))
        .await
        .unwrap_err();
    assert_eq!(err.kind, TaskErrorKind::Permanent);
    assert!(err.message.contains("could not be read"), "{err}");
    assert_eq!(f.intents(&task).await[0].state, AgentRunState::Unresolved);

    // A list the token may not read fails for good at once.
    let server = MockServer::start().await;
    let f = fixture(&server, Duration::from_secs(5));
    let task = trigger("def456", false);
    stored_intent(&f, &task, t0).await;
    Mock::given(method("GET"))
        .and(path(LIST))
        .respond_with(ResponseTemplate::new(403))
        .mount(&server)
        .await;
    let err = f.handle(&task, 2, t0).await.unwrap_err();
    assert_eq!(err.kind, TaskErrorKind::Permanent);
    assert!(posts(&server).await.is_empty());
}

#[tokio::test]
async fn a_head_sha_that_has_a_run_gets_no_second_one_unless_forced() {
    let server = MockServer::start().await;
    let now = Utc::now();
    Mock::given(method("POST"))
        .and(path(CREATE))
        .respond_with(ResponseTemplate::new(200).set_body_json(run_body(
            501,
            "ACTIVE",
            now,
            json!({}),
        )))
        .expect(2)
        .mount(&server)
        .await;
    let f = fixture(&server, Duration::from_secs(5));
    let first = trigger("abc123", false);
    assert!(matches!(
        f.handle(&first, 1, now).await.unwrap(),
        HandlerOutcome::Waiting { .. }
    ));
    // A second analysis of the same PR head (a reprocess, ready_for_review after opened).
    let second = trigger("abc123", false);
    let HandlerOutcome::Completed { output, followups } = f.handle(&second, 1, now).await.unwrap()
    else {
        panic!("not skipped")
    };
    assert!(followups.is_empty());
    assert_eq!(output["status"], json!("skipped"));
    assert_eq!(output["existing_task_id"], json!(first.task_id));
    assert!(
        output["reason"].as_str().unwrap().contains("force=true"),
        "{output}"
    );
    assert!(f.intents(&second).await.is_empty());
    // Asked explicitly: one more run.
    let forced = trigger("abc123", true);
    assert!(matches!(
        f.handle(&forced, 1, now).await.unwrap(),
        HandlerOutcome::Waiting { .. }
    ));
    assert_eq!(f.recorder.runs(), ["created", "duplicate", "created"]);
}

#[tokio::test]
async fn a_refused_creation_closes_its_intent_so_a_later_attempt_asks_again() {
    let server = MockServer::start().await;
    let now = Utc::now();
    Mock::given(method("POST"))
        .and(path(CREATE))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(CREATE))
        .respond_with(ResponseTemplate::new(200).set_body_json(run_body(
            501,
            "ACTIVE",
            now,
            json!({}),
        )))
        .mount(&server)
        .await;
    let f = fixture(&server, Duration::from_secs(5));
    let task = trigger("abc123", false);
    let err = f.handle(&task, 1, now).await.unwrap_err();
    assert!(
        matches!(err.kind, TaskErrorKind::Retryable { .. }),
        "{err:?}"
    );
    assert_eq!(f.intents(&task).await[0].state, AgentRunState::NotCreated);
    assert!(matches!(
        f.handle(&task, 2, now).await.unwrap(),
        HandlerOutcome::Waiting { .. }
    ));
    let states: Vec<_> = f
        .intents(&task)
        .await
        .into_iter()
        .map(|r| r.state)
        .collect();
    assert_eq!(states, [AgentRunState::NotCreated, AgentRunState::Created]);
    assert_eq!(posts(&server).await.len(), 2);
}

/// Through the worker: a killed worker left an intent without a run; the agent's list does not
/// show one, so the task stops for a person (failed, `needs_attention`, nothing created); the
/// operator's retry releases the intent and the next attempt creates exactly one run.
#[tokio::test]
async fn needs_attention_then_a_manual_retry_creates_exactly_one_run() {
    use orchestrator_core::clock::{Clock, ManualClock};
    use orchestrator_core::engine::{Worker, WorkerConfig};
    use orchestrator_core::event::NewEvent;
    use orchestrator_core::handler::HandlerRegistry;
    use orchestrator_core::memory::{FakeAgent, FakeGitHub};
    use orchestrator_core::observe::NoopObserver;
    use orchestrator_core::store::{EventStore, RetryOutcome, TaskStore};
    use orchestrator_core::task::{NewTask, TaskSpec, TaskStatus};

    let clock = Arc::new(ManualClock::new(Utc::now()));
    let store = Arc::new(MemoryStore::new());
    let agent = Arc::new(FakeAgent::new());
    agent.script_statuses(["COMPLETE"]);
    let mut registry = HandlerRegistry::new();
    orchestrator_codegen::handlers::register_handlers(
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
    };
    store.ingest(event, vec![new]).await.unwrap();
    // What a worker killed between storing the intent and recording the run leaves behind.
    let intent = RunIntent {
        task_id,
        attempt: 1,
        repository: Some("octo/repo".into()),
        pr_number: Some(12),
        head_sha: Some("abc123".into()),
        force: false,
    };
    store
        .admit(&intent, &AgentRunPolicy::default(), clock.now())
        .await
        .unwrap();

    assert_eq!(worker.run_once().await.unwrap(), 1);
    let task = store.get_task(task_id).await.unwrap().unwrap().task;
    assert_eq!(
        task.status,
        TaskStatus::Pending,
        "looked again after the grace"
    );
    clock.advance(Duration::from_secs(61));
    assert_eq!(worker.run_once().await.unwrap(), 1);
    let task = store.get_task(task_id).await.unwrap().unwrap().task;
    assert_eq!(task.status, TaskStatus::Failed);
    assert!(orchestrator_codegen::handlers::needs_attention(
        task.output_data.as_ref()
    ));
    assert!(
        task.error_message
            .as_deref()
            .unwrap()
            .contains("needs attention"),
        "{task:?}"
    );
    assert_eq!(agent.create_calls(), 0, "never created blindly");
    clock.advance(Duration::from_secs(3600));
    assert_eq!(worker.run_once().await.unwrap(), 0, "no automatic retry");

    assert!(matches!(
        store.retry_task(task_id, clock.now()).await.unwrap(),
        RetryOutcome::Scheduled(_)
    ));
    assert_eq!(worker.run_once().await.unwrap(), 1);
    assert_eq!(agent.create_calls(), 1, "the retry created one run");
    clock.advance(Duration::from_secs(30));
    assert_eq!(worker.run_once().await.unwrap(), 1);
    let task = store.get_task(task_id).await.unwrap().unwrap().task;
    assert_eq!(task.status, TaskStatus::Completed, "{task:?}");
    assert_eq!(task.codegen_task_id.as_deref(), Some("1001"));
    assert_eq!(agent.create_calls(), 1);
    let states: Vec<_> = store
        .agent_runs(task_id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.state)
        .collect();
    assert_eq!(states, [AgentRunState::Released, AgentRunState::Created]);
}

/// A ledger whose first admission commits and then answers an error, as PostgreSQL does when
/// the connection is reset during the COMMIT (committed on the server, an error for the client).
struct LostCommit {
    inner: Arc<MemoryStore>,
    failed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl AgentRunStore for LostCommit {
    async fn admit(
        &self,
        intent: &RunIntent,
        policy: &AgentRunPolicy,
        now: DateTime<Utc>,
    ) -> Result<orchestrator_core::store::agent_run::Admission, StoreError> {
        let admission = self.inner.admit(intent, policy, now).await?;
        if !self.failed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "connection reset by peer during COMMIT",
            ));
        }
        Ok(admission)
    }
    async fn record_created(
        &self,
        intent_id: Uuid,
        run: &orchestrator_core::store::ExternalRun,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner.record_created(intent_id, run, now).await
    }
    async fn record_not_created(
        &self,
        intent_id: Uuid,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner.record_not_created(intent_id, note, now).await
    }
    async fn mark_unresolved(
        &self,
        intent_id: Uuid,
        note: &str,
        marker: &Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner
            .mark_unresolved(intent_id, note, marker, now)
            .await
    }
    async fn agent_runs(&self, task_id: Uuid) -> Result<Vec<AgentRunRecord>, StoreError> {
        self.inner.agent_runs(task_id).await
    }
    async fn release_ended_run(
        &self,
        task_id: Uuid,
        run_id: &str,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.inner
            .release_ended_run(task_id, run_id, note, now)
            .await
    }
}

/// The intent was committed but the admission answered an error, so nothing was sent: the same
/// process creates its run on the next attempt (exactly one), instead of stopping for a person.
/// Another process, which cannot know that, still reconciles (and stops, the list being empty).
#[tokio::test]
async fn an_intent_whose_commit_answer_was_lost_gets_its_run_from_the_same_process() {
    let server = MockServer::start().await;
    let now = Utc::now();
    Mock::given(method("POST"))
        .and(path(CREATE))
        .respond_with(ResponseTemplate::new(200).set_body_json(run_body(
            800,
            "ACTIVE",
            now,
            json!({}),
        )))
        .mount(&server)
        .await;
    mount_list(&server, vec![]).await;
    let f = fixture(&server, Duration::from_secs(5));
    let ledger = Arc::new(LostCommit {
        inner: f.ledger.clone(),
        failed: Default::default(),
    });
    let recorder = Arc::new(Recorder::default());
    let client =
        CodegenClient::new(codegen_config(&server), clock_now(), recorder.clone()).unwrap();
    let handler = CodegenTrigger::new(
        Arc::new(client),
        ledger,
        Arc::new(HandlerConfig::default()),
        recorder.clone(),
    );
    let handle = |task: &Task, attempt: u32, at: DateTime<Utc>| {
        let ctx = TaskContext::new(
            task.clone(),
            attempt,
            Uuid::now_v7(),
            at,
            f.progress.clone(),
        );
        let handler = handler.clone();
        async move { handler.handle(&ctx).await }
    };
    let task = trigger("abc123", false);

    let err = handle(&task, 1, now).await.unwrap_err();
    assert!(
        !matches!(err.kind, TaskErrorKind::Permanent),
        "tried again later: {err:?}"
    );
    assert!(
        posts(&server).await.is_empty(),
        "nothing sent after the error"
    );
    let intents = f.intents(&task).await;
    assert_eq!(intents.len(), 1, "the intent was committed all the same");
    assert_eq!(intents[0].state, AgentRunState::Pending);

    let outcome = handle(&task, 2, now + chrono::Duration::seconds(2))
        .await
        .unwrap();
    assert!(
        matches!(outcome, HandlerOutcome::Waiting { .. }),
        "the run is followed: {outcome:?}"
    );
    let sent = posts(&server).await;
    assert_eq!(sent.len(), 1, "exactly one creation");
    assert_eq!(
        sent[0]["metadata"]["agent_run_intent"],
        json!(intents[0].intent_id),
        "for the committed intent"
    );
    let intents = f.intents(&task).await;
    assert_eq!(intents.len(), 1);
    assert_eq!(
        (intents[0].state, intents[0].run_id.as_deref()),
        (AgentRunState::Created, Some("800"))
    );

    // A process that did not see the error (here: the fixture's own handler, on another
    // task's intent left the same way) cannot know whether it was sent: it reconciles.
    let other = trigger("def456", false);
    let _ = stored_intent(&f, &other, now).await;
    let err = f
        .handle(&other, 2, now + chrono::Duration::minutes(2))
        .await
        .unwrap_err();
    assert_eq!(err.kind, TaskErrorKind::Permanent);
    assert!(err.message.contains("needs attention"), "{err}");
    assert_eq!(posts(&server).await.len(), 1, "nothing created blindly");
}
