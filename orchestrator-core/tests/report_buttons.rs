//! Routing of the orchestrator's own checks (issue 17), on corpus payloads changed to be ours:
//! the failure rules never analyse our checks (no reporting loop), GitHub's "Re-run" on our
//! check run or check suite asks for exactly one fresh analysis of that commit, and "Ask Codegen
//! to fix" asks for one forced `codegen_trigger`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use orchestrator_core::payload::ParsedEvent;
use orchestrator_core::report::ASK_CODEGEN_ACTION;
use orchestrator_core::routing::{OwnChecks, ReportButtonsRule, Router};
use orchestrator_core::task::{TaskSpec, TaskType};
use serde_json::{Value, json};

const APP_ID: u64 = 7;
const SHA: &str = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";

fn corpus(file: &str) -> Value {
    let dir = std::env::var_os("WEBHOOK_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    let bytes = std::fs::read(dir.join("github-payloads").join(file)).expect("corpus");
    serde_json::from_slice(&bytes).unwrap()
}

fn own() -> OwnChecks {
    OwnChecks {
        check_name: "webhook-orchestrator".into(),
        app_id: Some(APP_ID),
    }
}

/// The default rules, told about our checks, plus the buttons.
fn router() -> Router {
    let mut router = Router::with_default_rules();
    router.ignore_own_checks(own());
    router.add(ReportButtonsRule { own: own() });
    router
}

fn route(event: &str, payload: &Value) -> Vec<TaskSpec> {
    let parsed = ParsedEvent::parse(event, payload.to_string().as_bytes()).unwrap();
    router().route(&parsed)
}

/// `check_run.completed` (corpus: a PR-linked run) as a `conclusion` of `name` by `app`.
fn completed_run(name: &str, app: u64, conclusion: &str) -> Value {
    let mut p = corpus("check_run/completed.payload.json");
    p["check_run"]["name"] = json!(name);
    p["check_run"]["app"]["id"] = json!(app);
    p["check_run"]["conclusion"] = json!(conclusion);
    p
}

#[test]
fn our_failed_or_cancelled_checks_are_never_analysed() {
    for conclusion in ["failure", "cancelled", "timed_out"] {
        for name in ["webhook-orchestrator", "webhook-orchestrator / lint"] {
            let ours = completed_run(name, APP_ID, conclusion);
            assert!(route("check_run", &ours).is_empty(), "{name} {conclusion}");
        }
        // The same failure of someone else's check is analysed (the guard is not a blanket).
        let theirs = completed_run("Octocoders-linter", 29310, conclusion);
        let tasks = route("check_run", &theirs);
        assert_eq!(tasks.len(), 1, "{conclusion}");
        assert_eq!(tasks[0].task_type, TaskType::CHECK_FAILURE_ANALYSIS);
        // Another App's check that happens to carry our name is not ours.
        let namesake = completed_run("webhook-orchestrator", 29310, conclusion);
        assert_eq!(route("check_run", &namesake).len(), 1);
        let prefix = completed_run("webhook-orchestrator-2", APP_ID, conclusion);
        assert_eq!(route("check_run", &prefix).len(), 1, "only our exact name");
    }
    let mut suite = corpus("check_suite/completed.payload.json");
    suite["check_suite"]["conclusion"] = json!("failure");
    suite["check_suite"]["app"]["id"] = json!(APP_ID);
    assert!(route("check_suite", &suite).is_empty(), "our suite");
    suite["check_suite"]["app"]["id"] = json!(29310);
    let theirs = route("check_suite", &suite);
    assert!(
        theirs
            .iter()
            .all(|t| t.task_type == TaskType::CHECK_SUITE_FAILURE_ANALYSIS)
    );
}

#[test]
fn rerun_of_our_check_run_asks_for_one_fresh_forced_analysis_of_that_commit() {
    let mut p = completed_run("webhook-orchestrator", APP_ID, "failure");
    p["action"] = json!("rerequested");
    let tasks = route("check_run", &p);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    let task = &tasks[0];
    assert_eq!(task.task_type, TaskType::PULL_REQUEST_ANALYSIS);
    assert_eq!(task.commit_sha.as_deref(), Some(SHA));
    assert_eq!(task.pr_number, Some(2));
    assert_eq!(task.repository.as_deref(), Some("Codertocat/Hello-World"));
    assert_eq!(task.branch.as_deref(), Some("changes"));
    assert_eq!(task.config, json!({"force": true}));
    assert_eq!(task.input_data["action"], "rerequested");
    assert_eq!(task.input_data["head_sha"], SHA);
    assert_eq!(task.input_data["number"], 2);

    // Someone else's re-run is not ours to answer.
    let mut theirs = completed_run("Octocoders-linter", 29310, "failure");
    theirs["action"] = json!("rerequested");
    assert!(route("check_run", &theirs).is_empty());
}

#[test]
fn rerun_of_our_check_suite_asks_for_one_analysis_per_pull_request() {
    let mut p = corpus("check_suite/rerequested.payload.json");
    p["check_suite"]["app"]["id"] = json!(APP_ID);
    let tasks = route("check_suite", &p);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].task_type, TaskType::PULL_REQUEST_ANALYSIS);
    assert_eq!(tasks[0].commit_sha.as_deref(), Some(SHA));
    let corpus_as_sent = corpus("check_suite/rerequested.payload.json");
    assert!(
        route("check_suite", &corpus_as_sent).is_empty(),
        "another App's suite"
    );
}

#[test]
fn ask_codegen_to_fix_asks_for_one_forced_codegen_trigger() {
    let mut p = completed_run("webhook-orchestrator / lint", APP_ID, "neutral");
    p["action"] = json!("requested_action");
    p["requested_action"] = json!({"identifier": ASK_CODEGEN_ACTION});
    let tasks = route("check_run", &p);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    let task = &tasks[0];
    assert_eq!(task.task_type, TaskType::CODEGEN_TRIGGER);
    assert_eq!(task.config, json!({"force": true}));
    assert_eq!(task.commit_sha.as_deref(), Some(SHA));
    assert_eq!(task.pr_number, Some(2));
    assert_eq!(
        task.input_data["source_task_type"],
        "check_failure_analysis"
    );
    assert_eq!(task.input_data["reasons"], json!(["check_failure"]));

    // The button of an analysis' check: the run becomes that analysis' follow-up.
    let analysis = "0193a4c2-0000-7000-8000-000000000001";
    p["check_run"]["external_id"] = json!(analysis);
    let tasks = route("check_run", &p);
    assert_eq!(
        tasks[0].config,
        json!({"force": true, "parent_task_id": analysis})
    );
    let new = orchestrator_core::task::NewTask::new(tasks[0].clone(), 3, chrono::Utc::now());
    assert_eq!(
        new.parent_task_id.map(|id| id.to_string()).as_deref(),
        Some(analysis)
    );
    p["check_run"]["name"] = json!("webhook-orchestrator / check suite");
    let tasks = route("check_run", &p);
    assert_eq!(
        tasks[0].input_data["source_task_type"],
        "check_suite_failure_analysis"
    );

    p["requested_action"] = json!({"identifier": "something_else"});
    assert!(route("check_run", &p).is_empty(), "an unknown button");
}
