//! The views a pull request's author sees, from task rows alone.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::view::{CheckStatus, Conclusion, render};
use crate::task::{Task, TaskStatus, TaskType};

const SHA: &str = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

fn task(task_type: TaskType, status: TaskStatus, input: Value, output: Option<Value>) -> Task {
    Task {
        id: 1,
        task_id: Uuid::now_v7(),
        webhook_event_id: Some(1),
        parent_task_id: None,
        task_type,
        status,
        priority: 0,
        repository: Some("octo/repo".into()),
        pr_number: Some(7),
        branch: Some("feature".into()),
        commit_sha: Some(SHA.into()),
        config: json!({}),
        input_data: input,
        output_data: output,
        started_at: Some(t(1)),
        completed_at: None,
        error_message: None,
        retry_count: 0,
        max_retries: 3,
        attempts: 1,
        codegen_task_id: None,
        codegen_task_url: None,
        run_at: t(0),
        lease_owner: None,
        lease_expires_at: None,
        trace_context: None,
        created_at: t(0),
        updated_at: t(1),
        superseded_by: None,
    }
}

fn analysis(status: TaskStatus, output: Option<Value>) -> Task {
    task(
        TaskType::PULL_REQUEST_ANALYSIS,
        status,
        json!({"action": "synchronize", "installation_id": 99, "number": 7}),
        output,
    )
}

#[test]
fn a_superseded_analysis_is_cancelled_and_names_the_newer_commit() {
    let root = analysis(TaskStatus::Cancelled, None);
    let view = render("wo", &root, None, Some("0123456789abcdef")).unwrap();
    assert_eq!(view.status, CheckStatus::Completed);
    assert_eq!(view.conclusion, Some(Conclusion::Cancelled));
    assert_eq!(view.title, "Superseded by 0123456");
    assert!(
        view.summary.contains(
            "**Superseded:** commit `0123456789abcdef` was pushed to this pull request; it is analysed instead"
        ),
        "{}",
        view.summary
    );
    assert_eq!(view.installation_id, Some(99));
    assert_eq!(view.status_body()["state"], "error");
    let plain = render("wo", &root, None, None).unwrap();
    assert_eq!(plain.title, "Analysis cancelled");
}

fn check_analysis(output: Value) -> Task {
    task(
        TaskType::CHECK_FAILURE_ANALYSIS,
        TaskStatus::Completed,
        json!({"name": "lint <x> | y", "conclusion": "failure", "check_run_id": 5, "pr_number": 7}),
        Some(output),
    )
}

#[test]
fn a_failure_waiting_for_a_person_asks_for_codegen_with_the_button() {
    let root = check_analysis(json!({"should_trigger_codegen": true, "codegen_on_request": true}));
    let view = render("wo", &root, None, None).unwrap();
    assert_eq!(view.name, "wo / lint <x> | y");
    assert_eq!(view.status, CheckStatus::Completed);
    assert_eq!(view.conclusion, Some(Conclusion::ActionRequired));
    assert_eq!(view.title, "Waiting for Ask Codegen to fix");
    let body = view.check_run_body(true);
    assert_eq!(
        body["actions"],
        json!([{"label": "Ask Codegen to fix", "description": "Start a Codegen run for this failure",
                "identifier": "codegen_fix"}])
    );
    assert_eq!(body["head_sha"], SHA);
    let summary = body["output"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("check `lint &lt;x&gt; \\| y` concluded `failure`"),
        "{summary}"
    );
    assert!(
        summary.contains("Automatic Codegen runs are off for this repository"),
        "{summary}"
    );
    assert_eq!(view.status_body()["state"], "failure");

    // Once pressed, the run is the analysis' follow-up: the check follows it, without the button.
    let mut child = task(
        TaskType::CODEGEN_TRIGGER,
        TaskStatus::Pending,
        json!({"source_task_type": "check_failure_analysis"}),
        None,
    );
    child.started_at = None;
    child.parent_task_id = Some(root.task_id);
    let view = render("wo", &root, Some(&child), None).unwrap();
    assert_eq!(view.status, CheckStatus::InProgress);
    assert_eq!(view.title, "Codegen run requested");
    assert_eq!(view.check_run_body(false)["actions"], json!([]));
}

#[test]
fn a_check_with_nothing_for_codegen_is_neutral_without_a_button() {
    let view = render(
        "wo",
        &check_analysis(json!({"should_trigger_codegen": false})),
        None,
        None,
    )
    .unwrap();
    assert_eq!(view.conclusion, Some(Conclusion::Neutral));
    assert!(!view.ask_codegen);
    assert!(view.check_run_body(true).get("actions").is_none());
    assert_eq!(
        view.status_body()["state"],
        "success",
        "statuses know no neutral"
    );
    // The on-request flag means nothing on a pull-request analysis (it has no button).
    let pr = analysis(
        TaskStatus::Completed,
        Some(json!({"should_trigger_codegen": true, "codegen_on_request": true})),
    );
    let view = render("wo", &pr, None, None).unwrap();
    assert!(!view.ask_codegen);
    assert_eq!(view.conclusion, Some(Conclusion::Success));
}

#[test]
fn a_lost_codegen_run_asks_for_a_person() {
    let root = analysis(
        TaskStatus::Completed,
        Some(json!({"should_trigger_codegen": true})),
    );
    let mut child = task(
        TaskType::CODEGEN_TRIGGER,
        TaskStatus::Failed,
        json!({}),
        Some(json!({"status": "needs_attention"})),
    );
    child.parent_task_id = Some(root.task_id);
    let view = render("wo", &root, Some(&child), None).unwrap();
    assert_eq!(view.conclusion, Some(Conclusion::ActionRequired));
    assert_eq!(view.status_body()["state"], "failure");
}

#[test]
fn a_waiting_task_says_why_and_when() {
    let mut root = analysis(TaskStatus::Retrying, None);
    root.run_at = t(90);
    root.error_message = Some("GitHub pulls.files: 502 Bad Gateway".into());
    let view = render("wo", &root, None, None).unwrap();
    assert_eq!(view.status, CheckStatus::InProgress);
    assert_eq!(view.conclusion, None);
    assert!(
        view.summary.contains(
            "**Waiting:** next attempt at 2026-12-01T10:01:30Z (last error: GitHub pulls.files: 502 Bad Gateway)"
        ),
        "{}",
        view.summary
    );
    assert!(view.check_run_body(false).get("conclusion").is_none());
    let mut queued = analysis(TaskStatus::Pending, None);
    queued.started_at = None;
    assert_eq!(
        render("wo", &queued, None, None).unwrap().status,
        CheckStatus::Queued
    );
}

#[test]
fn only_tasks_on_a_pull_request_head_are_reported() {
    let mut root = analysis(TaskStatus::Pending, None);
    root.commit_sha = None;
    assert!(render("wo", &root, None, None).is_none());
    let mut root = analysis(TaskStatus::Pending, None);
    root.pr_number = None;
    assert!(render("wo", &root, None, None).is_none());
}

#[test]
fn only_http_run_pages_become_details_urls() {
    let root = analysis(
        TaskStatus::Completed,
        Some(json!({"should_trigger_codegen": true})),
    );
    let mut child = task(
        TaskType::CODEGEN_TRIGGER,
        TaskStatus::Pending,
        json!({}),
        Some(json!({"status": "in_progress", "web_url": "javascript:alert(1)"})),
    );
    child.codegen_task_id = Some("900".into());
    let view = render("wo", &root, Some(&child), None).unwrap();
    assert_eq!(view.details_url, None);
    assert_eq!(view.title, "Codegen run in progress");
    child.codegen_task_url = Some("https://codegen.com/agent/trace/900".into());
    let view = render("wo", &root, Some(&child), None).unwrap();
    assert_eq!(
        view.details_url.as_deref(),
        Some("https://codegen.com/agent/trace/900")
    );
}

#[test]
fn a_codegen_run_waiting_for_the_agent_budget_says_until_when() {
    let marker = json!({"agent_budget": {"scope": "global", "until": t(60), "retry_count": 0}});
    let mut root = analysis(
        TaskStatus::Completed,
        Some(json!({"should_trigger_codegen": true})),
    );
    root.completed_at = Some(t(2));
    let mut trigger = task(
        TaskType::CODEGEN_TRIGGER,
        TaskStatus::Pending,
        json!({"source_task_type": "pull_request_analysis"}),
        Some(marker.clone()),
    );
    trigger.run_at = t(60);
    let view = render("wo", &root, Some(&trigger), None).unwrap();
    assert_eq!(view.status, CheckStatus::InProgress);
    assert_eq!(view.title, "Waiting for the agent budget");
    assert!(
        view.summary.contains(
            "**Waiting for agent budget** until 2026-12-01T10:01:00Z (the global rate of Codegen runs is used up)"
        ),
        "{}",
        view.summary
    );

    // The repository's hourly limit is named as such.
    trigger.output_data =
        Some(json!({"agent_budget": {"scope": "repository", "until": t(3600), "retry_count": 0}}));
    let view = render("wo", &root, Some(&trigger), None).unwrap();
    assert!(
        view.summary
            .contains("the repository's hourly limit of Codegen runs is used up"),
        "{}",
        view.summary
    );

    // A failed attempt after the wait (its retry count moved on): the marker is stale.
    trigger.output_data = Some(marker);
    trigger.retry_count = 1;
    trigger.status = TaskStatus::Retrying;
    trigger.error_message = Some("Codegen: 502".into());
    let view = render("wo", &root, Some(&trigger), None).unwrap();
    assert_ne!(view.title, "Waiting for the agent budget");
    assert!(!view.summary.contains("agent budget"), "{}", view.summary);
}
