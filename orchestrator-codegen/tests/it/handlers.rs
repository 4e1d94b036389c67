//! The analysis handlers' decisions, with the real GitHub client against wiremock.

use std::sync::Arc;

use orchestrator_codegen::HandlerConfig;
use orchestrator_codegen::handlers::CodegenTriggerInput;
use orchestrator_codegen::handlers::{
    CheckFailureAnalysis, CheckSuiteFailureAnalysis, PullRequestAnalysis, PushAnalysis,
};
use orchestrator_core::error::TaskErrorKind;
use orchestrator_core::handler::{HandlerOutcome, TaskHandler};
use orchestrator_core::task::{Task, TaskType};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Progress, ctx, github, task};

fn pr_task(action: &str, draft: bool) -> Task {
    task(
        TaskType::PULL_REQUEST_ANALYSIS,
        Some(7),
        json!({"action": action, "installation_id": null, "number": 7, "draft": draft, "title": "Add feature",
               "html_url": "https://github.com/octo/repo/pull/7", "head_ref": "feature", "head_sha": "abc",
               "base_ref": "main", "sender": "octocat"}),
    )
}

fn files(names: &[&str]) -> Value {
    Value::Array(
        names
            .iter()
            .map(|n| json!({"filename": n, "status": "modified", "additions": 10, "deletions": 2, "changes": 12}))
            .collect(),
    )
}

async fn run(
    handler: &dyn TaskHandler,
    task: Task,
) -> (Value, Vec<orchestrator_core::task::TaskSpec>) {
    let outcome = handler
        .handle(&ctx(
            task,
            chrono::Utc::now(),
            Arc::new(Progress::default()),
        ))
        .await
        .unwrap();
    match outcome {
        HandlerOutcome::Completed { output, followups } => (output, followups),
        other => panic!("expected Completed, got {other:?}"),
    }
}

#[tokio::test]
async fn pull_request_shapes_decide_the_trigger_reasons() {
    let code4 = ["src/a.rs", "src/b.rs", "lib/c.py", "web/d.ts"];
    let code3_tests = [
        "src/a.rs",
        "src/b.rs",
        "lib/c.py",
        "tests/x.rs",
        "tests/y.rs",
        "pkg/z_test.go",
    ];
    let table: &[(&str, bool, &[&str], &[&str])] = &[
        (
            "opened",
            false,
            &["src/main.rs", "README.md"],
            &["new_pr_with_code_changes"],
        ),
        ("opened", false, &["README.md", "docs/guide.md"], &[]),
        ("opened", false, &["tests/only_test.py"], &[]),
        (
            "opened",
            false,
            &["Cargo.toml", ".github/workflows/ci.yml"],
            &[],
        ),
        (
            "ready_for_review",
            false,
            &["README.md"],
            &["ready_for_review"],
        ),
        (
            "ready_for_review",
            true,
            &["src/a.rs"],
            &["ready_for_review"],
        ),
        ("synchronize", false, &code4, &["significant_code_changes"]),
        ("synchronize", false, &code3_tests, &[]),
        ("reopened", false, &["src/main.rs"], &[]),
        ("edited", false, &["src/main.rs"], &[]),
    ];
    for (action, draft, names, expected) in table {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/repos/octo/repo/pulls/7/files"))
            .respond_with(ResponseTemplate::new(200).set_body_json(files(names)))
            .expect(1)
            .mount(&server)
            .await;
        let (client, _clock, _recorder) = github(&server);
        let handler =
            PullRequestAnalysis::new(Arc::new(client), Arc::new(HandlerConfig::default()));
        let (output, followups) = run(&handler, pr_task(action, *draft)).await;
        let case = format!("{action} draft={draft} {names:?}");
        assert_eq!(output["trigger_reasons"], json!(expected), "{case}");
        assert_eq!(
            output["should_trigger_codegen"],
            json!(!expected.is_empty()),
            "{case}"
        );
        assert_eq!(output["files_changed"], json!(names.len()), "{case}");
        assert_eq!(output["additions"], json!(10 * names.len()), "{case}");
        assert_eq!(output["deletions"], json!(2 * names.len()), "{case}");
        assert_eq!(followups.len(), usize::from(!expected.is_empty()), "{case}");
        if let Some(spec) = followups.first() {
            assert_eq!(spec.task_type, TaskType::CODEGEN_TRIGGER);
            assert_eq!(
                (spec.repository.as_deref(), spec.pr_number),
                (Some("octo/repo"), Some(7))
            );
            assert_eq!(spec.branch.as_deref(), Some("feature"));
            let input: CodegenTriggerInput =
                serde_json::from_value(spec.input_data.clone()).unwrap();
            assert_eq!(input.source_task_type, "pull_request_analysis");
            assert_eq!(json!(input.reasons), json!(expected));
            assert_eq!(input.pr_title.as_deref(), Some("Add feature"));
        }
    }
}

#[tokio::test]
async fn file_counts_are_reported_by_kind() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(files(&[
            "src/a.rs",
            "tests/t.rs",
            "ci.yml",
            "README.md",
            "src/b.go",
        ])))
        .mount(&server)
        .await;
    let (client, _clock, _recorder) = github(&server);
    let handler = PullRequestAnalysis::new(Arc::new(client), Arc::new(HandlerConfig::default()));
    let (output, _) = run(&handler, pr_task("opened", false)).await;
    assert_eq!(
        (
            &output["code_files"],
            &output["test_files"],
            &output["config_files"],
            &output["other_files"]
        ),
        (&json!(2), &json!(1), &json!(1), &json!(1))
    );
}

#[tokio::test]
async fn a_draft_is_skipped_without_asking_github() {
    let server = MockServer::start().await;
    let (client, _clock, _recorder) = github(&server);
    let handler = PullRequestAnalysis::new(Arc::new(client), Arc::new(HandlerConfig::default()));
    let (output, followups) = run(&handler, pr_task("opened", true)).await;
    assert_eq!(output["should_trigger_codegen"], json!(false));
    assert_eq!(output["skipped"], json!("draft pull request"));
    assert!(followups.is_empty());
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_synchronize_threshold_is_configuration() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(files(&["src/a.rs", "src/b.rs"])))
        .mount(&server)
        .await;
    let (client, _clock, _recorder) = github(&server);
    let config = HandlerConfig {
        synchronize_code_file_threshold: 1,
        ..HandlerConfig::default()
    };
    let handler = PullRequestAnalysis::new(Arc::new(client), Arc::new(config));
    let (output, _) = run(&handler, pr_task("synchronize", false)).await;
    assert_eq!(
        output["trigger_reasons"],
        json!(["significant_code_changes"])
    );
}

#[tokio::test]
async fn bad_input_and_missing_repository_fail_permanently() {
    let server = MockServer::start().await;
    let (client, _clock, _recorder) = github(&server);
    let handler = PullRequestAnalysis::new(Arc::new(client), Arc::new(HandlerConfig::default()));
    let bad = task(
        TaskType::PULL_REQUEST_ANALYSIS,
        Some(7),
        json!({"number": "seven"}),
    );
    let err = handler
        .handle(&ctx(bad, chrono::Utc::now(), Arc::new(Progress::default())))
        .await
        .unwrap_err();
    assert_eq!(err.kind, TaskErrorKind::Permanent);
    let mut no_repo = pr_task("opened", false);
    no_repo.repository = None;
    let err = handler
        .handle(&ctx(
            no_repo,
            chrono::Utc::now(),
            Arc::new(Progress::default()),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind, TaskErrorKind::Permanent);
}

fn check_task(id: u64) -> Task {
    task(
        TaskType::CHECK_FAILURE_ANALYSIS,
        Some(3),
        json!({"installation_id": null, "check_run_id": id, "name": "x", "conclusion": "failure", "head_sha": "abc",
               "html_url": null, "output_title": null, "output_summary": null, "pr_number": 3, "head_ref": "fix-branch"}),
    )
}

#[tokio::test]
async fn check_runs_are_classified_and_only_failures_ask_for_a_fix() {
    let table = [
        ("unit-tests", "failure", Some("test_failure")),
        ("integration (postgres)", "timed_out", Some("test_failure")),
        ("lint", "failure", Some("lint_failure")),
        ("rustfmt / format", "failure", Some("lint_failure")),
        ("build (release)", "cancelled", Some("build_failure")),
        ("deploy-preview", "FAILURE", Some("check_failure")),
        ("unit-tests", "success", None),
        ("unit-tests", "neutral", None),
    ];
    for (name, conclusion, expected) in table {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/repos/octo/repo/check-runs/11"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": 11, "name": name, "status": "completed", "conclusion": conclusion,
                "html_url": "https://github.com/octo/repo/runs/11",
                "output": {"title": "It broke", "summary": "assertion failed"}})))
            .expect(1)
            .mount(&server)
            .await;
        let (client, _clock, _recorder) = github(&server);
        let handler =
            CheckFailureAnalysis::new(Arc::new(client), Arc::new(HandlerConfig::default()));
        let (output, followups) = run(&handler, check_task(11)).await;
        let case = format!("{name} {conclusion}");
        assert_eq!(
            output["should_trigger_codegen"],
            json!(expected.is_some()),
            "{case}"
        );
        assert_eq!(
            output["trigger_reasons"],
            json!(expected.into_iter().collect::<Vec<_>>()),
            "{case}"
        );
        assert_eq!(followups.len(), usize::from(expected.is_some()), "{case}");
        if let Some(spec) = followups.first() {
            let input: CodegenTriggerInput =
                serde_json::from_value(spec.input_data.clone()).unwrap();
            assert_eq!(input.failing_checks.len(), 1);
            assert_eq!(input.failing_checks[0].name, name);
            assert_eq!(
                input.failing_checks[0].summary.as_deref(),
                Some("assertion failed")
            );
            assert_eq!(input.head_ref.as_deref(), Some("fix-branch"));
            assert_eq!(spec.branch.as_deref(), Some("fix-branch"));
        }
    }
}

#[tokio::test]
async fn a_check_suite_asks_for_one_fix_covering_every_failed_run() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/repo/check-suites/5/check-runs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"total_count": 4, "check_runs": [
            {"id": 1, "name": "unit tests", "status": "completed", "conclusion": "failure", "output": {"title": "t", "summary": "s"}},
            {"id": 2, "name": "integration tests", "status": "completed", "conclusion": "timed_out"},
            {"id": 3, "name": "clippy", "status": "completed", "conclusion": "failure"},
            {"id": 4, "name": "build", "status": "completed", "conclusion": "success"}]})))
        .mount(&server)
        .await;
    let (client, _clock, _recorder) = github(&server);
    let handler =
        CheckSuiteFailureAnalysis::new(Arc::new(client), Arc::new(HandlerConfig::default()));
    let suite = task(
        TaskType::CHECK_SUITE_FAILURE_ANALYSIS,
        Some(3),
        json!({"installation_id": null, "check_suite_id": 5, "conclusion": "failure", "head_sha": "abc", "head_branch": "feature", "pr_number": 3}),
    );
    let (output, followups) = run(&handler, suite).await;
    assert_eq!(output["total_runs"], json!(4));
    assert_eq!(output["failed_runs"], json!(3));
    assert_eq!(
        output["trigger_reasons"],
        json!(["test_failure", "lint_failure"])
    );
    let input: CodegenTriggerInput =
        serde_json::from_value(followups[0].input_data.clone()).unwrap();
    assert_eq!(
        input
            .failing_checks
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );

    // A suite whose runs all passed (re-run) asks for nothing.
    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"total_count": 1, "check_runs": [
            {"id": 4, "name": "build", "status": "completed", "conclusion": "success"}]})),
        )
        .mount(&server)
        .await;
    let (client, _clock, _recorder) = github(&server);
    let handler =
        CheckSuiteFailureAnalysis::new(Arc::new(client), Arc::new(HandlerConfig::default()));
    let suite = task(
        TaskType::CHECK_SUITE_FAILURE_ANALYSIS,
        Some(3),
        json!({"installation_id": null, "check_suite_id": 5, "conclusion": "failure", "head_sha": null, "head_branch": null, "pr_number": 3}),
    );
    let (output, followups) = run(&handler, suite).await;
    assert_eq!(output["should_trigger_codegen"], json!(false));
    assert!(followups.is_empty());
}

#[tokio::test]
async fn push_analysis_counts_commits_and_distinct_files_and_never_triggers() {
    let handler = PushAnalysis::new(Arc::new(HandlerConfig::default()));
    let push = task(
        TaskType::PUSH_ANALYSIS,
        None,
        json!({"installation_id": null, "ref": "refs/heads/main", "before": "a", "after": "b", "forced": false,
               "pusher": "octocat", "compare": null, "commits": [
            {"id": "1", "message": "one", "added": ["src/new.rs"], "removed": [], "modified": ["README.md"]},
            {"id": "2", "message": "two", "added": [], "removed": ["old.yml"], "modified": ["src/new.rs", "tests/t.rs"]}]}),
    );
    let (output, followups) = run(&handler, push).await;
    assert_eq!(output["commit_count"], json!(2));
    assert_eq!(output["files_changed"], json!(4));
    assert_eq!(
        (
            &output["code_files"],
            &output["test_files"],
            &output["config_files"]
        ),
        (&json!(1), &json!(1), &json!(1))
    );
    assert_eq!(output["should_trigger_codegen"], json!(false));
    assert!(followups.is_empty());
}

/// Whatever `input_data` a task carries (an old row, a hand-made task, a bug elsewhere), a
/// built-in handler never panics on it and never calls out: it fails the task permanently.
#[tokio::test]
async fn unexpected_input_data_fails_permanently_without_calling_anyone() {
    use orchestrator_core::handler::{HandlerRegistry, TaskContext};
    use orchestrator_core::memory::{FakeAgent, FakeGitHub};
    use orchestrator_core::observe::NoopObserver;

    let github = Arc::new(FakeGitHub::new());
    let agent = Arc::new(FakeAgent::new());
    let mut registry = HandlerRegistry::new();
    orchestrator_codegen::handlers::register_handlers(
        &mut registry,
        github.clone(),
        agent.clone(),
        Arc::new(orchestrator_core::memory::MemoryStore::new()),
        HandlerConfig::default(),
        Arc::new(NoopObserver),
    );
    let inputs = [
        Value::Null,
        json!([1, 2]),
        json!("text"),
        json!({"unexpected": true}),
        json!({"number": -1, "check_run_id": "x", "check_suite_id": 1.5, "commits": 3, "reasons": 7}),
    ];
    for task_type in TaskType::BUILT_IN {
        for input in &inputs {
            let t = task(task_type.clone(), Some(3), input.clone());
            let c: TaskContext = ctx(t, chrono::Utc::now(), Arc::new(Progress::default()));
            let handler = registry.get(&task_type).unwrap();
            let err = handler
                .handle(&c)
                .await
                .expect_err(&format!("{task_type} accepted {input}"));
            assert_eq!(err.kind, TaskErrorKind::Permanent, "{task_type} {input}");
        }
    }
    assert_eq!(github.calls(), 0);
    assert_eq!((agent.create_calls(), agent.get_calls()), (0, 0));
}
