#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use super::input::{CheckRunInput, CheckSuiteInput, PullRequestInput, PushInput};
use super::*;

fn event(name: &str, json: Value) -> ParsedEvent {
    ParsedEvent::parse(name, json.to_string().as_bytes()).unwrap()
}

fn types(tasks: &[TaskSpec]) -> Vec<&str> {
    tasks.iter().map(|t| t.task_type.as_str()).collect()
}

fn pull_request(action: &str) -> ParsedEvent {
    event(
        "pull_request",
        json!({"action": action, "number": 9,
            "pull_request": {"number": 9, "draft": true, "title": "Fix", "html_url": "h",
                "head": {"ref": "feat", "sha": "abc"}, "base": {"ref": "main", "sha": "def"}},
            "repository": {"full_name": "o/r", "default_branch": "main"},
            "installation": {"id": 3}, "sender": {"login": "octo"}}),
    )
}

fn check(name: &str, action: &str, conclusion: &str, prs: &[u64]) -> ParsedEvent {
    let prs: Vec<Value> = prs
        .iter()
        .map(|n| json!({"number": n, "head": {"ref": format!("b{n}"), "sha": "s"}}))
        .collect();
    event(
        name,
        json!({"action": action,
            name: {"id": 77, "name": "unit tests", "status": "completed", "conclusion": conclusion,
                "head_sha": "sha1", "head_branch": "hb", "html_url": "u",
                "output": {"title": "t", "summary": "s"}, "check_suite": {"head_branch": "hb"},
                "pull_requests": prs},
            "repository": {"full_name": "o/r"}, "installation": {"id": 4}}),
    )
}

fn push(git_ref: &str, default_branch: Option<&str>, after: &str) -> ParsedEvent {
    event(
        "push",
        json!({"ref": git_ref, "before": "b", "after": after, "forced": false,
            "pusher": {"name": "p"}, "compare": "c",
            "commits": [{"id": after, "message": "subject\n\nbody", "added": ["a"], "removed": [], "modified": []}],
            "repository": {"full_name": "o/r", "default_branch": default_branch, "created_at": 1}}),
    )
}

#[test]
fn default_rules_have_stable_names() {
    let router = Router::with_default_rules();
    assert_eq!(
        router.rule_names(),
        [
            "pull_request_analysis",
            "check_run_failure",
            "check_suite_failure",
            "push_default_branch"
        ]
    );
    assert!(Router::empty().route(&pull_request("opened")).is_empty());
}

#[test]
fn pull_request_actions_route_as_the_spec_says() {
    let router = Router::with_default_rules();
    for action in ["opened", "synchronize", "reopened", "ready_for_review"] {
        let tasks = router.route(&pull_request(action));
        assert_eq!(types(&tasks), ["pull_request_analysis"], "{action}");
        let t = &tasks[0];
        assert_eq!(
            (t.repository.as_deref(), t.pr_number),
            (Some("o/r"), Some(9))
        );
        assert_eq!(
            (t.branch.as_deref(), t.commit_sha.as_deref()),
            (Some("feat"), Some("abc"))
        );
        let input: PullRequestInput = serde_json::from_value(t.input_data.clone()).unwrap();
        assert_eq!(input.action, action);
        assert_eq!(
            (input.number, input.draft, input.installation_id),
            (9, true, Some(3))
        );
        assert_eq!(input.base_ref.as_deref(), Some("main"));
        assert_eq!(input.sender.as_deref(), Some("octo"));
    }
    for action in ["closed", "labeled", "edited", "some_future_action"] {
        assert!(router.route(&pull_request(action)).is_empty(), "{action}");
    }
}

#[test]
fn pull_request_actions_priority_and_config_are_configurable() {
    let mut router = Router::with_default_rules();
    router.add(PullRequestRule {
        actions: vec!["closed".into()],
        priority: 7,
        config: json!({"deep": true}),
    });
    assert_eq!(router.rule_names().len(), 4, "replaced, not appended");
    assert!(router.route(&pull_request("opened")).is_empty());
    let tasks = router.route(&pull_request("closed"));
    assert_eq!(
        (tasks[0].priority, &tasks[0].config),
        (7, &json!({"deep": true}))
    );
}

#[test]
fn failed_check_runs_make_one_task_per_pull_request() {
    let router = Router::with_default_rules();
    for conclusion in ["failure", "cancelled", "timed_out"] {
        let tasks = router.route(&check("check_run", "completed", conclusion, &[1, 2]));
        assert_eq!(types(&tasks), ["check_failure_analysis"; 2], "{conclusion}");
        assert_eq!(
            tasks.iter().map(|t| t.pr_number).collect::<Vec<_>>(),
            [Some(1), Some(2)]
        );
        assert_eq!(tasks[1].branch.as_deref(), Some("b2"));
        assert_eq!(tasks[1].commit_sha.as_deref(), Some("sha1"));
        let input: CheckRunInput = serde_json::from_value(tasks[1].input_data.clone()).unwrap();
        assert_eq!(
            (input.check_run_id, input.pr_number, input.name.as_str()),
            (77, 2, "unit tests")
        );
        assert_eq!(input.output_summary.as_deref(), Some("s"));
        assert_eq!(input.installation_id, Some(4));
    }
    assert!(
        router
            .route(&check("check_run", "completed", "failure", &[]))
            .is_empty()
    );
    assert!(
        router
            .route(&check("check_run", "completed", "success", &[1]))
            .is_empty()
    );
    assert!(
        router
            .route(&check("check_run", "completed", "neutral", &[1]))
            .is_empty()
    );
    assert!(
        router
            .route(&check("check_run", "rerequested", "failure", &[1]))
            .is_empty()
    );

    let mut custom = Router::with_default_rules();
    assert!(custom.remove("check_run_failure"));
    assert!(!custom.remove("check_run_failure"));
    assert!(
        custom
            .route(&check("check_run", "completed", "failure", &[1]))
            .is_empty()
    );
    custom.add(CheckRunFailureRule {
        conclusions: vec!["action_required".into()],
        ..Default::default()
    });
    assert_eq!(
        custom
            .route(&check("check_run", "completed", "action_required", &[1]))
            .len(),
        1
    );
    assert!(
        custom
            .route(&check("check_run", "completed", "failure", &[1]))
            .is_empty()
    );
}

#[test]
fn failed_check_suites_make_one_task_per_pull_request() {
    let router = Router::with_default_rules();
    let tasks = router.route(&check("check_suite", "completed", "timed_out", &[5, 6, 7]));
    assert_eq!(types(&tasks), ["check_suite_failure_analysis"; 3]);
    let input: CheckSuiteInput = serde_json::from_value(tasks[2].input_data.clone()).unwrap();
    assert_eq!((input.check_suite_id, input.pr_number), (77, 7));
    assert_eq!(input.head_branch.as_deref(), Some("hb"));
    assert!(
        router
            .route(&check("check_suite", "completed", "success", &[5]))
            .is_empty()
    );
    assert!(
        router
            .route(&check("check_suite", "requested", "failure", &[5]))
            .is_empty()
    );
}

#[test]
fn pushes_route_only_to_the_default_branch() {
    let router = Router::with_default_rules();
    let tasks = router.route(&push("refs/heads/develop", Some("develop"), "c0ffee"));
    assert_eq!(types(&tasks), ["push_analysis"]);
    assert_eq!(
        (tasks[0].branch.as_deref(), tasks[0].commit_sha.as_deref()),
        (Some("develop"), Some("c0ffee"))
    );
    let input: PushInput = serde_json::from_value(tasks[0].input_data.clone()).unwrap();
    assert_eq!(input.git_ref, "refs/heads/develop");
    assert_eq!(input.commits[0].message, "subject");
    assert_eq!(input.pusher.as_deref(), Some("p"));

    for (git_ref, default, after) in [
        ("refs/heads/main", Some("develop"), "c0ffee"), // not the default branch
        ("refs/heads/master", Some("main"), "c0ffee"),  // main/master are not hard-coded
        ("refs/tags/develop", Some("develop"), "c0ffee"), // a tag named like the branch
        ("refs/heads/develop", None, "c0ffee"),         // default branch unknown
        (
            "refs/heads/develop",
            Some("develop"),
            "0000000000000000000000000000000000000000",
        ),
    ] {
        assert!(
            router.route(&push(git_ref, default, after)).is_empty(),
            "{git_ref} {default:?} {after}"
        );
    }
}

#[test]
fn informational_and_unknown_events_make_no_task() {
    let router = Router::with_default_rules();
    for (name, body) in [
        ("ping", json!({"zen": "z", "hook_id": 1})),
        (
            "installation",
            json!({"action": "created", "installation": {"id": 1}}),
        ),
        (
            "installation_repositories",
            json!({"action": "added", "repositories_added": []}),
        ),
        (
            "issue_comment",
            json!({"action": "created", "repository": {"full_name": "o/r"}}),
        ),
        (
            "workflow_run",
            json!({"action": "completed", "workflow_run": {"conclusion": "failure"}}),
        ),
    ] {
        assert!(router.route(&event(name, body)).is_empty(), "{name}");
    }
}

#[test]
fn event_rules_route_user_events_to_user_task_types() {
    let rule: EventRule = serde_json::from_value(json!({
        "name": "triage", "event": "issue_comment", "actions": ["created"],
        "task_type": "comment_triage", "priority": 5, "config": {"model": "small"}}))
    .unwrap();
    let router = Router::with_default_rules().with_rule(rule);
    let created = event(
        "issue_comment",
        json!({"action": "created", "repository": {"full_name": "o/r"}, "installation": {"id": 8},
               "sender": {"login": "u"}}),
    );
    let tasks = router.route(&created);
    assert_eq!(types(&tasks), ["comment_triage"]);
    assert_eq!(
        (tasks[0].priority, tasks[0].repository.as_deref()),
        (5, Some("o/r"))
    );
    assert_eq!(tasks[0].config, json!({"model": "small"}));
    let input: EventInput = serde_json::from_value(tasks[0].input_data.clone()).unwrap();
    assert_eq!(
        input,
        EventInput {
            event: "issue_comment".into(),
            action: Some("created".into()),
            installation_id: Some(8),
            sender: Some("u".into())
        }
    );
    let edited = event("issue_comment", json!({"action": "edited"}));
    assert!(router.route(&edited).is_empty());

    // No action list: every delivery of the event; typed events get their PR facts.
    let any = EventRule::new(
        "all_prs",
        "pull_request",
        TaskType::new("pr_audit").unwrap(),
    );
    let tasks = Router::empty()
        .with_rule(any)
        .route(&pull_request("closed"));
    assert_eq!(
        (types(&tasks), tasks[0].pr_number),
        (vec!["pr_audit"], Some(9))
    );

    let bad = serde_json::from_value::<EventRule>(
        json!({"name": "x", "event": "issues", "task_type": "Not Valid"}),
    );
    assert!(bad.is_err());
}

#[test]
fn builtin_rules_deserialize_with_defaults() {
    let rule: CheckSuiteFailureRule = serde_json::from_value(json!({"priority": 2})).unwrap();
    assert_eq!(rule.conclusions, ["failure", "cancelled", "timed_out"]);
    assert_eq!(rule.priority, 2);
    let rule: PullRequestRule = serde_json::from_value(json!({"actions": ["opened"]})).unwrap();
    assert_eq!(rule.actions, ["opened"]);
    assert_eq!(rule.config, json!({}));
}
