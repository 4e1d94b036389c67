//! The agent budget in `codegen_trigger`: over it the run creation waits exactly until a slot
//! frees (a deferral, no attempt used, no ledger intent), a slot the ledger's refusal left unused
//! is given back, and a later deferral for another reason drops the budget's note.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use orchestrator_codegen::HandlerConfig;
use orchestrator_codegen::handlers::CodegenTrigger;
use orchestrator_core::budget::{AgentBudget, AgentBudgetConfig, MemoryAgentBudget};
use orchestrator_core::error::TaskErrorKind;
use orchestrator_core::handler::{HandlerOutcome, TaskHandler};
use orchestrator_core::memory::MemoryStore;
use orchestrator_core::store::agent_run::AgentRunStore;
use orchestrator_core::task::{Task, TaskType};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Progress, Recorder, codegen, ctx, task};

struct Setup {
    handler: CodegenTrigger,
    budget: Arc<MemoryAgentBudget>,
    ledger: Arc<MemoryStore>,
    recorder: Arc<Recorder>,
    progress: Arc<Progress>,
}

fn setup(server: &MockServer, per_minute: u32) -> Setup {
    let (client, _clock, recorder) = codegen(server);
    let limits = AgentBudgetConfig {
        per_minute: Some(per_minute),
        ..AgentBudgetConfig::default()
    };
    let budget = Arc::new(MemoryAgentBudget::new(limits));
    let ledger = Arc::new(MemoryStore::new());
    let config = HandlerConfig {
        budget: limits,
        ..HandlerConfig::default()
    };
    let handler = CodegenTrigger::new(
        Arc::new(client),
        ledger.clone(),
        Arc::new(config),
        recorder.clone(),
    )
    .with_budget(budget.clone());
    Setup {
        handler,
        budget,
        ledger,
        recorder,
        progress: Arc::new(Progress::default()),
    }
}

fn trigger(sha: &str) -> Task {
    let mut t = task(
        TaskType::CODEGEN_TRIGGER,
        Some(12),
        json!({"source_task_type": "pull_request_analysis", "reasons": ["ready_for_review"]}),
    );
    t.commit_sha = Some(sha.to_owned());
    t
}

async fn mount_create(server: &MockServer, status: u16) {
    let body = json!({"id": 501, "organization_id": 42, "status": "ACTIVE",
        "web_url": "https://codegen.com/agent/trace/501"});
    Mock::given(method("POST"))
        .and(path("/v1/organizations/42/agent/run"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(server)
        .await;
}

async fn creations(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

fn at(start: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
    start + chrono::Duration::seconds(secs)
}

#[tokio::test]
async fn over_the_budget_a_creation_waits_exactly_until_the_slot_frees_and_stores_no_intent() {
    let server = MockServer::start().await;
    mount_create(&server, 200).await;
    let s = setup(&server, 1);
    let start = Utc::now();

    let first = s
        .handler
        .handle(&ctx(trigger("a1"), start, s.progress.clone()))
        .await
        .unwrap();
    assert!(matches!(first, HandlerOutcome::Waiting { .. }), "{first:?}");

    let second = trigger("b2");
    let second_id = second.task_id;
    let err = s
        .handler
        .handle(&ctx(second.clone(), at(start, 20), s.progress.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        TaskErrorKind::Deferred {
            after: Duration::from_secs(40)
        },
        "{err}"
    );
    assert!(
        err.message.starts_with(
            "waiting for the agent budget (global limit of 1 run creation(s) per minute) until "
        ),
        "{}",
        err.message
    );
    let marker = &err.output.as_ref().unwrap()["agent_budget"];
    assert_eq!(marker["scope"], "global");
    assert_eq!(
        marker["until"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        at(start, 60)
    );
    assert_eq!(
        creations(&server).await,
        1,
        "the waiting task asked for nothing"
    );
    assert!(s.ledger.agent_runs(second_id).await.unwrap().is_empty());
    assert_eq!(*s.recorder.budget_deferrals.lock().unwrap(), ["global"]);

    // When the slot frees, the same task creates its run.
    let mut again = second;
    again.output_data = err.output;
    let outcome = s
        .handler
        .handle(&ctx(again, at(start, 60), s.progress.clone()))
        .await
        .unwrap();
    let HandlerOutcome::Waiting {
        output: Some(state),
        ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(state["run_id"], 501);
    assert!(state.get("agent_budget").is_none(), "{state}");
    assert_eq!(creations(&server).await, 2);
    assert_eq!(s.ledger.agent_runs(second_id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_slot_taken_for_a_head_that_already_has_its_run_is_given_back() {
    let server = MockServer::start().await;
    mount_create(&server, 200).await;
    let s = setup(&server, 2);
    let now = Utc::now();
    s.handler
        .handle(&ctx(trigger("same"), now, s.progress.clone()))
        .await
        .unwrap();
    let skipped = s
        .handler
        .handle(&ctx(trigger("same"), now, s.progress.clone()))
        .await
        .unwrap();
    let HandlerOutcome::Completed { output, .. } = skipped else {
        panic!("{skipped:?}")
    };
    assert_eq!(output["status"], "skipped");
    assert_eq!(creations(&server).await, 1);
    // One of the two slots is used: the refused creation's went back.
    assert_eq!(s.budget.state(now).await.unwrap().remaining, Some(1));
}

#[tokio::test]
async fn a_later_deferral_for_another_reason_drops_the_budget_note_and_keeps_the_rest() {
    let server = MockServer::start().await;
    // Codegen's own rate limit: a deferral that is not the budget's.
    mount_create(&server, 429).await;
    let s = setup(&server, 5);
    let mut waited = trigger("c3");
    waited.output_data = Some(json!({
        "agent_budget": {"scope": "global", "until": Utc::now(), "retry_count": 0},
        "history": [{"run_id": 7, "status": "failed"}],
    }));
    let err = s
        .handler
        .handle(&ctx(waited, Utc::now(), s.progress.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err.kind, TaskErrorKind::Deferred { .. }), "{err}");
    assert_eq!(
        err.output,
        Some(json!({"history": [{"run_id": 7, "status": "failed"}]}))
    );
}
