//! Each client's breaker: five unhealthy answers open it, an open breaker sends nothing and the
//! handler defers (no attempt used; neither does the failure that opened it, nor a failed
//! probe), and after the recovery time one probe closes it again.

use std::sync::Arc;
use std::time::Duration;

use orchestrator_codegen::HandlerConfig;
use orchestrator_codegen::handlers::{CheckFailureAnalysis, CodegenTrigger};
use orchestrator_core::breaker::{BreakerState, CircuitBreaker};
use orchestrator_core::clock::ManualClock;
use orchestrator_core::error::{ClientErrorKind, TaskErrorKind};
use orchestrator_core::github::{GitHubApi, RepoRef};
use orchestrator_core::handler::TaskHandler;
use orchestrator_core::task::TaskType;
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Progress, Recorder, codegen, ctx, github, task};

fn check_task() -> orchestrator_core::task::Task {
    task(
        TaskType::CHECK_FAILURE_ANALYSIS,
        Some(3),
        json!({"installation_id": null, "check_run_id": 11, "name": "unit-tests", "conclusion": "failure",
               "head_sha": "abc", "html_url": null, "output_title": null, "output_summary": null,
               "pr_number": 3, "head_ref": "feature"}),
    )
}

/// A GitHub that answers 503 to everything (and expects `calls` calls), and the check-failure
/// handler over a client of it.
struct GitHubDown {
    server: MockServer,
    clock: Arc<ManualClock>,
    recorder: Arc<Recorder>,
    breaker: Arc<CircuitBreaker>,
    handler: CheckFailureAnalysis,
}

async fn github_down(calls: u64) -> GitHubDown {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .expect(calls)
        .mount(&server)
        .await;
    let (client, clock, recorder) = github(&server);
    let breaker = client.breaker();
    let handler = CheckFailureAnalysis::new(Arc::new(client), Arc::new(HandlerConfig::default()));
    GitHubDown {
        server,
        clock,
        recorder,
        breaker,
        handler,
    }
}

#[tokio::test]
async fn five_server_errors_open_the_github_breaker_and_the_handler_defers() {
    let GitHubDown {
        server,
        clock,
        recorder,
        breaker,
        handler,
    } = github_down(5).await;
    let progress = Arc::new(Progress::default());

    for attempt in 1..=4 {
        let err = handler
            .handle(&ctx(check_task(), clock_now_of(&clock), progress.clone()))
            .await
            .unwrap_err();
        assert!(
            matches!(err.kind, TaskErrorKind::Retryable { .. }),
            "attempt {attempt}: {err:?}"
        );
    }
    // The fifth failure opens the breaker: the dependency is down, so that task waits for the
    // breaker too instead of using an attempt; and once it is open nothing is sent, the task is
    // deferred until the breaker lets a probe through.
    for call in ["the failure that opens it", "a call while it is open"] {
        let err = handler
            .handle(&ctx(check_task(), clock_now_of(&clock), progress.clone()))
            .await
            .unwrap_err();
        assert_eq!(
            err.kind,
            TaskErrorKind::Deferred {
                after: Duration::from_secs(30)
            },
            "{call}"
        );
        assert_eq!(breaker.state(), BreakerState::Open);
    }
    assert_eq!(
        recorder.breaker_states(),
        [("github".to_owned(), BreakerState::Open)]
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 5);
    assert_eq!(breaker.snapshot().consecutive_failures, 5);

    // After the recovery time one probe goes out; its success closes the breaker.
    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": 11, "name": "unit-tests", "status": "completed", "conclusion": "success"}),
        ))
        .mount(&server)
        .await;
    clock.advance(Duration::from_secs(30));
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    handler
        .handle(&ctx(check_task(), clock_now_of(&clock), progress))
        .await
        .unwrap();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test]
async fn a_failed_probe_reopens_the_breaker_and_its_task_waits_without_using_an_attempt() {
    // The server is kept to the end: it checks the six calls when dropped.
    let GitHubDown {
        server: _server,
        clock,
        breaker,
        handler,
        ..
    } = github_down(6).await;
    let progress = Arc::new(Progress::default());
    for _ in 0..5 {
        let _ = handler
            .handle(&ctx(check_task(), clock_now_of(&clock), progress.clone()))
            .await;
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    clock.advance(Duration::from_secs(30));
    let err = handler
        .handle(&ctx(check_task(), clock_now_of(&clock), progress))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        TaskErrorKind::Deferred {
            after: Duration::from_secs(30)
        },
        "{err}"
    );
    assert_eq!(breaker.state(), BreakerState::Open);
}

fn clock_now_of(clock: &orchestrator_core::clock::ManualClock) -> chrono::DateTime<chrono::Utc> {
    use orchestrator_core::clock::Clock;
    clock.now()
}

#[tokio::test]
async fn client_errors_do_not_open_the_breaker() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let (client, _clock, _recorder) = github(&server);
    let repo = RepoRef::parse("octo/repo").unwrap();
    for _ in 0..8 {
        let err = client.check_run(None, &repo, 1).await.unwrap_err();
        assert_eq!(err.kind(), ClientErrorKind::Permanent);
    }
    assert_eq!(client.breaker().state(), BreakerState::Closed);
    assert_eq!(server.received_requests().await.unwrap().len(), 8);
}

#[tokio::test]
async fn five_failures_open_the_codegen_breaker_and_codegen_trigger_defers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .expect(5)
        .mount(&server)
        .await;
    let (client, clock, recorder) = codegen(&server);
    let breaker = client.breaker();
    let handler = CodegenTrigger::new(
        Arc::new(client),
        Arc::new(orchestrator_core::memory::MemoryStore::new()),
        Arc::new(HandlerConfig::default()),
        recorder.clone(),
    );
    let progress = Arc::new(Progress::default());
    let trigger = || {
        task(
            TaskType::CODEGEN_TRIGGER,
            Some(3),
            json!({"source_task_type": "pull_request_analysis", "reasons": ["ready_for_review"]}),
        )
    };
    for _ in 0..4 {
        let err = handler
            .handle(&ctx(trigger(), clock_now_of(&clock), progress.clone()))
            .await
            .unwrap_err();
        assert!(matches!(err.kind, TaskErrorKind::Retryable { .. }));
    }
    // The failure that opens the breaker waits for it, as every later task does.
    for _ in 0..2 {
        let err = handler
            .handle(&ctx(trigger(), clock_now_of(&clock), progress.clone()))
            .await
            .unwrap_err();
        assert_eq!(
            err.kind,
            TaskErrorKind::Deferred {
                after: Duration::from_secs(30)
            }
        );
    }
    let err = handler
        .handle(&ctx(trigger(), clock_now_of(&clock), progress.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        TaskErrorKind::Deferred {
            after: Duration::from_secs(30)
        }
    );
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(
        recorder.breaker_states(),
        [("codegen".to_owned(), BreakerState::Open)]
    );
    assert!(progress.runs.lock().unwrap().is_empty());
    assert!(recorder.runs().is_empty(), "no run was created");
}
