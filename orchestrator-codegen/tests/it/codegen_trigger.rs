//! `codegen_trigger` against a wiremock Codegen server: one run per task, the prompt, following
//! the run to each terminal status, timeouts and the unconfigured case.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use orchestrator_codegen::handlers::CodegenTrigger;
use orchestrator_codegen::{CodegenClient, CodegenConfig, HandlerConfig};
use orchestrator_core::error::TaskErrorKind;
use orchestrator_core::handler::{HandlerOutcome, TaskHandler};
use orchestrator_core::memory::MemoryStore;
use orchestrator_core::store::TaskEnd;
use orchestrator_core::task::{Task, TaskType};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Progress, Recorder, clock_now, codegen, codegen_config, ctx, task};

fn trigger_task() -> Task {
    task(
        TaskType::CODEGEN_TRIGGER,
        Some(12),
        json!({
            "source_task_type": "check_failure_analysis",
            "reasons": ["test_failure"],
            "installation_id": 77,
            "head_ref": "feature",
            "failing_checks": [{"id": 11, "name": "unit-tests", "conclusion": "failure", "kind": "test",
                "html_url": "https://github.com/octo/repo/runs/11", "title": "2 tests failed",
                "summary": "test_login: expected 200, got 500"}]
        }),
    )
}

fn run_body(id: i64, status: &str) -> Value {
    json!({"id": id, "organization_id": 42, "status": status, "web_url": format!("https://codegen.com/agent/trace/{id}"),
           "result": "patched", "summary": "fixed the login test",
           "github_pull_requests": [{"id": 1, "title": "Fix login", "url": "https://github.com/octo/repo/pull/13", "head_branch_name": "codegen/fix"}]})
}

async fn mount_create(server: &MockServer, expect: u64) {
    Mock::given(method("POST"))
        .and(path("/v1/organizations/42/agent/run"))
        .respond_with(ResponseTemplate::new(200).set_body_json(run_body(501, "ACTIVE")))
        .expect(expect)
        .mount(server)
        .await;
}

async fn mount_get(server: &MockServer, status: &str) {
    Mock::given(method("GET"))
        .and(path("/v1/organizations/42/agent/run/501"))
        .respond_with(ResponseTemplate::new(200).set_body_json(run_body(501, status)))
        .mount(server)
        .await;
}

fn handler(server: &MockServer, config: HandlerConfig) -> (CodegenTrigger, Arc<Recorder>) {
    let (client, _clock, recorder) = codegen(server);
    (
        CodegenTrigger::new(
            Arc::new(client),
            Arc::new(MemoryStore::new()),
            Arc::new(config),
            recorder.clone(),
        ),
        recorder,
    )
}

async fn handle(
    h: &CodegenTrigger,
    task: Task,
    now: DateTime<Utc>,
    progress: &Arc<Progress>,
) -> HandlerOutcome {
    h.handle(&ctx(task, now, progress.clone())).await.unwrap()
}

#[tokio::test]
async fn the_first_attempt_creates_one_run_records_it_and_waits() {
    let server = MockServer::start().await;
    mount_create(&server, 1).await;
    let (h, recorder) = handler(&server, HandlerConfig::default());
    let progress = Arc::new(Progress::default());
    let task = trigger_task();
    let (task_id, now) = (task.task_id, Utc::now());

    let outcome = handle(&h, task, now, &progress).await;

    let HandlerOutcome::Waiting {
        after,
        output: Some(state),
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(after, Duration::from_secs(30));
    assert_eq!(
        (state["status"].as_str(), state["run_id"].as_i64()),
        (Some("in_progress"), Some(501))
    );
    let recorded = progress.runs.lock().unwrap().clone();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].0, task_id);
    assert_eq!(recorded[0].1.id, "501");
    assert_eq!(
        recorded[0].1.url.as_deref(),
        Some("https://codegen.com/agent/trace/501")
    );
    assert_eq!(recorder.runs(), ["created"]);

    let sent: Value = server.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    let prompt = sent["prompt"].as_str().unwrap();
    for needle in [
        "octo/repo",
        "#12",
        "test_failure",
        "Tests are failing",
        "unit-tests (failure)",
        "2 tests failed",
        "expected 200, got 500",
        "feature",
    ] {
        assert!(
            prompt.contains(needle),
            "prompt lacks {needle:?}:\n{prompt}"
        );
    }
    assert_eq!(sent["metadata"]["task_id"], json!(task_id));
}

#[tokio::test]
async fn a_retried_attempt_with_a_recorded_run_polls_instead_of_creating_another() {
    let server = MockServer::start().await;
    mount_create(&server, 0).await;
    mount_get(&server, "RUNNING").await;
    let (h, recorder) = handler(&server, HandlerConfig::default());
    let progress = Arc::new(Progress::default());
    let mut task = trigger_task();
    task.codegen_task_id = Some("501".to_owned());
    task.codegen_task_url = Some("https://codegen.com/agent/trace/501".to_owned());
    task.attempts = 2;

    let outcome = handle(&h, task, Utc::now(), &progress).await;

    assert!(
        matches!(outcome, HandlerOutcome::Waiting { .. }),
        "{outcome:?}"
    );
    assert!(progress.runs.lock().unwrap().is_empty());
    assert!(recorder.runs().is_empty());
}

#[tokio::test]
async fn a_run_is_followed_with_growing_waits_until_it_ends() {
    let server = MockServer::start().await;
    mount_create(&server, 1).await;
    Mock::given(method("GET"))
        .and(path("/v1/organizations/42/agent/run/501"))
        .respond_with(ResponseTemplate::new(200).set_body_json(run_body(501, "RUNNING")))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_get(&server, "COMPLETE").await;
    let config = HandlerConfig {
        poll_initial: Duration::from_secs(30),
        poll_max: Duration::from_secs(100),
        ..HandlerConfig::default()
    };
    let (h, recorder) = handler(&server, config);
    let progress = Arc::new(Progress::default());
    let mut task = trigger_task();
    let mut now = Utc::now();
    let mut waits = Vec::new();
    // Acts as the worker: store Waiting's output as output_data and call again after the wait.
    let output = loop {
        match handle(&h, task.clone(), now, &progress).await {
            HandlerOutcome::Waiting { after, output } => {
                waits.push(after.as_secs());
                task.output_data = output;
                now += chrono::Duration::from_std(after).unwrap();
            }
            HandlerOutcome::Completed { output, followups } => {
                assert!(followups.is_empty());
                break output;
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(waits, [30, 60, 100, 100]);
    assert_eq!(output["status"], json!("completed"));
    assert_eq!(output["agent_status"], json!("COMPLETE"));
    assert_eq!(output["result"], json!("patched"));
    assert_eq!(output["summary"], json!("fixed the login test"));
    assert_eq!(
        output["pull_requests"][0]["url"],
        json!("https://github.com/octo/repo/pull/13")
    );
    assert_eq!(
        output["web_url"],
        json!("https://codegen.com/agent/trace/501")
    );
    assert_eq!(recorder.runs(), ["created", "completed"]);
}

/// The task's end for `agent_status` under `config`: its status name, output and error.
async fn end_of(
    agent_status: &str,
    config: HandlerConfig,
) -> (&'static str, Value, Option<String>) {
    let server = MockServer::start().await;
    mount_get(&server, agent_status).await;
    let (h, recorder) = handler(&server, config);
    let mut task = trigger_task();
    task.codegen_task_id = Some("501".to_owned());
    let result = handle(&h, task, Utc::now(), &Arc::new(Progress::default())).await;
    let (name, output, error) = match result {
        HandlerOutcome::Completed { output, .. } => ("completed", output, None),
        HandlerOutcome::Ended {
            end: TaskEnd::Failed,
            output,
            error,
        } => ("failed", output, Some(error)),
        HandlerOutcome::Ended {
            end: TaskEnd::Cancelled,
            output,
            error,
        } => ("cancelled", output, Some(error)),
        other => panic!("{agent_status}: {other:?}"),
    };
    assert_eq!(output["status"], json!(name), "{agent_status}");
    assert_eq!(output["agent_status"], json!(agent_status));
    assert_eq!(output["result"], json!("patched"));
    assert_eq!(recorder.runs(), [name], "{agent_status}");
    (name, output, error)
}

/// Issue 13: a run ending in a failure status fails the task (no automatic retry: the engine
/// never retries an `Ended` outcome), with the agent's status and result in `error_message`;
/// a run stopped by a person cancels it.
#[tokio::test]
async fn each_terminal_status_ends_the_task_as_it_should() {
    let table = [
        ("COMPLETE", "completed"),
        ("completed", "completed"),
        ("ERROR", "failed"),
        ("failed", "failed"),
        ("TIMEOUT", "failed"),
        ("MAX_ITERATIONS_REACHED", "failed"),
        ("Out_Of_Tokens", "failed"),
        ("CANCELLED", "cancelled"),
        ("Stopped", "cancelled"),
    ];
    for (agent_status, expected) in table {
        let (name, _output, error) = end_of(agent_status, HandlerConfig::default()).await;
        assert_eq!(name, expected, "{agent_status}");
        if let Some(error) = error {
            assert!(
                error.contains("501") && error.contains(agent_status) && error.contains("patched"),
                "{agent_status}: {error}"
            );
        }
    }
}

/// `CODEGEN_FAILURE_STATUSES` decides which statuses fail the task: a status left out completes
/// it, an extra one (unknown to the built-in classification) fails it.
#[tokio::test]
async fn the_failure_statuses_are_configurable() {
    let config = HandlerConfig {
        run_failure_statuses: vec!["error".into(), "rejected_by_policy".into()],
        ..HandlerConfig::default()
    };
    assert_eq!(end_of("ERROR", config.clone()).await.0, "failed");
    assert_eq!(end_of("TIMEOUT", config.clone()).await.0, "completed");
    assert_eq!(
        end_of("REJECTED_BY_POLICY", config.clone()).await.0,
        "failed"
    );
    assert_eq!(end_of("STOPPED", config).await.0, "cancelled");
}

#[tokio::test]
async fn unknown_statuses_keep_waiting_and_are_kept_verbatim() {
    let server = MockServer::start().await;
    mount_get(&server, "THINKING_HARD").await;
    let (h, _recorder) = handler(&server, HandlerConfig::default());
    let mut task = trigger_task();
    task.codegen_task_id = Some("501".to_owned());
    let outcome = handle(&h, task, Utc::now(), &Arc::new(Progress::default())).await;
    let HandlerOutcome::Waiting {
        output: Some(state),
        ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(state["agent_status"], json!("THINKING_HARD"));
}

#[tokio::test]
async fn following_gives_up_after_max_wait_with_status_timeout() {
    let server = MockServer::start().await;
    mount_get(&server, "RUNNING").await;
    let (h, recorder) = handler(&server, HandlerConfig::default());
    let now = Utc::now();
    let mut task = trigger_task();
    task.output_data = Some(
        json!({"status": "in_progress", "run_id": 501, "web_url": null,
        "started_at": now - chrono::Duration::hours(2), "polls": 30, "agent_status": "RUNNING"}),
    );
    let outcome = handle(&h, task, now, &Arc::new(Progress::default())).await;
    let HandlerOutcome::Completed { output, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(output["status"], json!("timeout"));
    assert_eq!(output["run_id"], json!(501));
    assert_eq!(recorder.runs(), ["timeout"]);
}

#[tokio::test]
async fn poll_errors_wait_when_transient_and_fail_when_permanent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "120"))
        .mount(&server)
        .await;
    let (h, _recorder) = handler(&server, HandlerConfig::default());
    let mut task = trigger_task();
    task.codegen_task_id = Some("501".to_owned());
    let outcome = handle(&h, task.clone(), Utc::now(), &Arc::new(Progress::default())).await;
    let HandlerOutcome::Waiting {
        after,
        output: Some(state),
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        after,
        Duration::from_secs(120),
        "Retry-After wins over the shorter backoff"
    );
    assert_eq!(state["poll_errors"], json!(1));

    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let err = h
        .handle(&ctx(task, Utc::now(), Arc::new(Progress::default())))
        .await
        .unwrap_err();
    assert_eq!(err.kind, TaskErrorKind::Permanent);
}

#[tokio::test]
async fn a_refused_creation_fails_permanently_and_creates_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(402)
                .set_body_json(json!({"message": "run limit reached", "status_code": 402})),
        )
        .mount(&server)
        .await;
    let (h, recorder) = handler(&server, HandlerConfig::default());
    let progress = Arc::new(Progress::default());
    let err = h
        .handle(&ctx(trigger_task(), Utc::now(), progress.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.kind, TaskErrorKind::Permanent);
    assert!(err.message.contains("run limit reached"));
    assert!(progress.runs.lock().unwrap().is_empty());
    // Counted once in codegen_agent_tasks_total as a refusal, never as a created run.
    assert_eq!(recorder.runs(), vec!["rejected".to_owned()]);
}

#[tokio::test]
async fn without_credentials_the_run_is_skipped_with_a_clear_note() {
    let server = MockServer::start().await;
    let config = CodegenConfig {
        token: None,
        ..codegen_config(&server)
    };
    let recorder = Arc::new(Recorder::default());
    let client = CodegenClient::new(config, clock_now(), recorder.clone()).unwrap();
    let h = CodegenTrigger::new(
        Arc::new(client),
        Arc::new(MemoryStore::new()),
        Arc::new(HandlerConfig::default()),
        recorder.clone(),
    );
    let outcome = handle(
        &h,
        trigger_task(),
        Utc::now(),
        &Arc::new(Progress::default()),
    )
    .await;
    assert_eq!(
        outcome,
        HandlerOutcome::done(
            json!({"status": "skipped", "reason": "CODEGEN_TOKEN and CODEGEN_ORG_ID are not set"})
        )
    );
    assert_eq!(recorder.runs(), ["skipped"]);
    assert!(server.received_requests().await.unwrap().is_empty());
}

/// An upstream's `Retry-After` is honoured while polling, but never past the run's deadline: a
/// huge value must not park the task (nearly) forever.
#[tokio::test]
async fn a_huge_retry_after_while_polling_is_cut_at_the_deadline() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "9999999999"))
        .mount(&server)
        .await;
    let (h, _recorder) = handler(&server, HandlerConfig::default());
    let mut task = trigger_task();
    task.codegen_task_id = Some("501".to_owned());
    let now = Utc::now();
    task.started_at = Some(now);
    let outcome = handle(&h, task, now, &Arc::new(Progress::default())).await;
    let HandlerOutcome::Waiting { after, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(after, HandlerConfig::default().max_wait);
}

/// The create answer may carry no `web_url` yet; once a poll shows it, it is recorded on the
/// task (and its parent) like the run id.
#[tokio::test]
async fn a_web_url_that_appears_later_is_recorded() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": 501, "organization_id": 42, "status": "PENDING"})),
        )
        .mount(&server)
        .await;
    mount_get(&server, "RUNNING").await;
    let (h, _recorder) = handler(&server, HandlerConfig::default());
    let progress = Arc::new(Progress::default());
    let mut task = trigger_task();
    let now = Utc::now();
    let HandlerOutcome::Waiting { output, .. } = handle(&h, task.clone(), now, &progress).await
    else {
        panic!("expected to wait")
    };
    task.output_data = output;
    task.codegen_task_id = Some("501".to_owned());
    handle(&h, task.clone(), now, &progress).await;
    let runs = progress.runs.lock().unwrap().clone();
    let urls: Vec<Option<String>> = runs.iter().map(|(_, run)| run.url.clone()).collect();
    assert_eq!(
        urls,
        [None, Some("https://codegen.com/agent/trace/501".to_owned())]
    );
    assert!(
        runs.iter()
            .all(|(id, run)| *id == task.task_id && run.id == "501")
    );
    // Known already: not recorded again.
    task.codegen_task_url = Some("https://codegen.com/agent/trace/501".to_owned());
    handle(&h, task, now, &progress).await;
    assert_eq!(progress.runs.lock().unwrap().len(), 2);
}
