//! Every payload of the corpus (`github-payloads/MANIFEST.tsv`) parses and routes as the default
//! rules say. The expected tasks are written out per file below, so a change in parsing or
//! routing shows up as a named file with a wrong task list.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod corpus_support;

use bytes::Bytes;
use orchestrator_core::delivery::BodyFormat;
use orchestrator_core::payload::{EventKind, ParsedEvent, json_body};
use orchestrator_core::routing::Router;
use orchestrator_core::signature::{SignatureVerifier, WebhookSecret};
use orchestrator_core::task::TaskSpec;
use serde_json::Value;

const PR: &str = "pull_request_analysis";
const CHECK_RUN: &str = "check_failure_analysis";
const CHECK_SUITE: &str = "check_suite_failure_analysis";
const PUSH: &str = "push_analysis";

/// File (relative to `github-payloads/`) -> task types the default rules create.
const EXPECTED: &[(&str, &[&str])] = &[
    ("check_run/completed.1.payload.json", &[CHECK_RUN]),
    ("check_run/completed.payload.json", &[]),
    ("check_run/completed.with-organization.payload.json", &[]),
    ("check_run/created.payload.json", &[]),
    ("check_run/created.with-organization.payload.json", &[]),
    ("check_run/requested_action.payload.json", &[]),
    ("check_run/rerequested.payload.json", &[]),
    ("check_run/rerequested.with-organization.payload.json", &[]),
    ("check_suite/completed.1.payload.json", &[]),
    ("check_suite/completed.payload.json", &[]),
    ("check_suite/completed.with-organization.payload.json", &[]),
    ("check_suite/requested.payload.json", &[]),
    (
        "check_suite/requested.payload.with-email-with-special-characters.json",
        &[],
    ),
    ("check_suite/requested.with-organization.payload.json", &[]),
    ("check_suite/rerequested.payload.json", &[]),
    (
        "check_suite/rerequested.with-organization.payload.json",
        &[],
    ),
    ("create/payload.json", &[]),
    ("create/with-description.payload.json", &[]),
    ("create/with-installation.payload.json", &[]),
    ("create/with-organization.payload.json", &[]),
    ("delete/payload.json", &[]),
    ("delete/with-installation.payload.json", &[]),
    ("delete/with-organization.payload.json", &[]),
    ("installation/created.payload.json", &[]),
    ("installation/created.with-requester.payload.json", &[]),
    ("installation/deleted.payload.json", &[]),
    ("installation/new_permissions_accepted.payload.json", &[]),
    ("installation/suspend.payload.json", &[]),
    ("installation/unsuspend.payload.json", &[]),
    ("installation_repositories/added.payload.json", &[]),
    ("installation_repositories/removed.payload.json", &[]),
    ("issue_comment/created.1.payload.json", &[]),
    ("issue_comment/created.payload.json", &[]),
    ("issue_comment/created.with-installation.payload.json", &[]),
    ("issue_comment/created.with-organization.payload.json", &[]),
    ("issue_comment/deleted.payload.json", &[]),
    ("issue_comment/deleted.with-organization.payload.json", &[]),
    ("issue_comment/edited.payload.json", &[]),
    ("issue_comment/edited.with-organization.payload.json", &[]),
    ("issues/assigned.payload.json", &[]),
    ("issues/assigned.with-installation.payload.json", &[]),
    ("issues/assigned.with-organization.payload.json", &[]),
    ("issues/deleted.payload.json", &[]),
    ("issues/demilestoned.payload.json", &[]),
    ("issues/demilestoned.with-organization.payload.json", &[]),
    ("issues/edited.payload.json", &[]),
    ("issues/edited.with-organization.payload.json", &[]),
    ("issues/labeled.payload.json", &[]),
    ("issues/labeled.with-organization.payload.json", &[]),
    ("issues/locked.payload.json", &[]),
    ("issues/locked.with-organization.payload.json", &[]),
    ("issues/milestoned.payload.json", &[]),
    ("issues/milestoned.with-organization.payload.json", &[]),
    ("issues/opened.payload.json", &[]),
    ("issues/opened.with-empty-body.payload.json", &[]),
    ("issues/opened.with-organization.payload.json", &[]),
    ("issues/opened.with-transfer.payload.json", &[]),
    ("issues/pinned.payload.json", &[]),
    ("issues/reopened.payload.json", &[]),
    ("issues/transferred.payload.json", &[]),
    ("issues/unassigned.payload.json", &[]),
    ("issues/unassigned.with-organization.payload.json", &[]),
    ("issues/unlabeled.payload.json", &[]),
    ("issues/unlabeled.with-organization.payload.json", &[]),
    ("issues/unlocked.payload.json", &[]),
    ("issues/unlocked.with-organization.payload.json", &[]),
    ("issues/unpinned.payload.json", &[]),
    ("ping/payload.json", &[]),
    ("ping/with-app_id.payload.json", &[]),
    ("ping/with-organization.payload.json", &[]),
    ("pull_request/assigned.payload.json", &[]),
    ("pull_request/assigned.with-organization.payload.json", &[]),
    ("pull_request/closed.payload.json", &[]),
    ("pull_request/closed.with-organization.payload.json", &[]),
    ("pull_request/converted_to_draft.payload.json", &[]),
    (
        "pull_request/converted_to_draft.with-installation.payload.json",
        &[],
    ),
    (
        "pull_request/converted_to_draft.with-organization.payload.json",
        &[],
    ),
    ("pull_request/labeled.payload.json", &[]),
    ("pull_request/labeled.with-organization.payload.json", &[]),
    ("pull_request/locked.payload.json", &[]),
    ("pull_request/locked.with-organization.payload.json", &[]),
    ("pull_request/opened.payload.json", &[PR]),
    ("pull_request/opened.with-null-body.json", &[PR]),
    ("pull_request/opened.with-organization.payload.json", &[PR]),
    ("pull_request/ready_for_review.payload.json", &[PR]),
    (
        "pull_request/ready_for_review.with-installation.payload.json",
        &[PR],
    ),
    (
        "pull_request/ready_for_review.with-organization.payload.json",
        &[PR],
    ),
    ("pull_request/reopened.payload.json", &[PR]),
    (
        "pull_request/reopened.with-organization.payload.json",
        &[PR],
    ),
    ("pull_request/review_request_removed.payload.json", &[]),
    ("pull_request/review_requested.payload.json", &[]),
    ("pull_request/synchronize.payload.json", &[PR]),
    ("pull_request/unassigned.payload.json", &[]),
    (
        "pull_request/unassigned.with-organization.payload.json",
        &[],
    ),
    ("pull_request/unlabeled.payload.json", &[]),
    ("pull_request/unlabeled.with-organization.payload.json", &[]),
    ("pull_request/unlocked.payload.json", &[]),
    ("pull_request/unlocked.with-organization.payload.json", &[]),
    ("pull_request_review/dismissed.payload.json", &[]),
    ("pull_request_review/submitted.payload.json", &[]),
    (
        "pull_request_review/submitted.with-organization.payload.json",
        &[],
    ),
    ("push/1.payload.json", &[]),
    ("push/payload.json", &[]),
    ("push/with-installation.payload.json", &[]),
    ("push/with-new-branch.payload.json", &[PUSH]),
    ("push/with-no-username-committer.payload.json", &[PUSH]),
    ("push/with-organization.payload.json", &[]),
    ("release/created.payload.json", &[]),
    ("release/created.with-discussion-url.payload.json", &[]),
    ("release/created.with-installation.payload.json", &[]),
    ("release/deleted.payload.json", &[]),
    ("release/deleted.with-reactions.payload.json", &[]),
    ("release/edited.payload.json", &[]),
    ("release/edited.with-reactions.payload.json", &[]),
    ("release/prereleased.payload.json", &[]),
    ("release/prereleased.with-discussion-url.payload.json", &[]),
    ("release/published.payload.json", &[]),
    ("release/published.with-discussion-url.payload.json", &[]),
    ("release/released.json", &[]),
    ("status/payload.json", &[]),
    ("status/with-author-committer-null.payload.json", &[]),
    ("status/with-installation.payload.json", &[]),
    ("workflow_run/completed.payload.json", &[]),
    (
        "workflow_run/completed.with-pull-requests.payload.json",
        &[],
    ),
    ("workflow_run/requested.payload.json", &[]),
    ("workflow_run/requested.with-conclusion.payload.json", &[]),
];

fn event_of(file: &str) -> &str {
    file.split('/').next().unwrap()
}

fn load(file: &str) -> Vec<u8> {
    corpus_support::read(&format!("github-payloads/{file}"))
}

fn route(event: &str, json: &[u8]) -> (ParsedEvent, Vec<TaskSpec>) {
    let parsed = ParsedEvent::parse(event, json).unwrap_or_else(|e| panic!("{event}: {e}"));
    let tasks = Router::with_default_rules().route(&parsed);
    (parsed, tasks)
}

#[test]
fn the_table_names_every_manifest_entry() {
    let manifest = corpus_support::manifest();
    let files: Vec<&str> = manifest.iter().map(|(f, _, _)| f.as_str()).collect();
    let table: Vec<&str> = EXPECTED.iter().map(|(f, _)| *f).collect();
    assert_eq!(files, table, "MANIFEST.tsv and the EXPECTED table differ");
    for (file, event, _) in &manifest {
        assert_eq!(event_of(file), event, "the folder name is the event");
    }
}

#[test]
fn every_payload_parses_and_routes_as_the_rules_say() {
    let mut total = 0;
    for (file, expected) in EXPECTED {
        let json = load(file);
        let event = event_of(file);
        let (parsed, tasks) = route(event, &json);
        let types: Vec<&str> = tasks.iter().map(|t| t.task_type.as_str()).collect();
        assert_eq!(&types, expected, "{file}");
        total += tasks.len();

        // The typed view agrees with a generic reading of the same JSON.
        let value: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(parsed.name, event);
        assert_eq!(
            parsed.action.as_deref(),
            value["action"].as_str(),
            "{file}: action"
        );
        assert_eq!(
            parsed.repository.as_ref().map(|r| r.full_name.as_str()),
            value["repository"]["full_name"].as_str(),
            "{file}: repository"
        );
        assert_eq!(
            parsed.installation_id,
            value["installation"]["id"].as_i64(),
            "{file}: installation"
        );
        assert_eq!(
            parsed.sender.as_deref(),
            value["sender"]["login"].as_str(),
            "{file}: sender"
        );
        let typed = match (&parsed.kind, event) {
            (EventKind::PullRequest(pr), "pull_request") => {
                assert_eq!(
                    Some(pr.number),
                    value["pull_request"]["number"].as_u64(),
                    "{file}"
                );
                assert_eq!(
                    pr.head.sha.as_deref(),
                    value["pull_request"]["head"]["sha"].as_str()
                );
                true
            }
            (EventKind::CheckRun(run), "check_run") => {
                assert_eq!(
                    run.pull_requests.len(),
                    value["check_run"]["pull_requests"]
                        .as_array()
                        .unwrap()
                        .len()
                );
                true
            }
            (EventKind::CheckSuite(suite), "check_suite") => {
                assert_eq!(
                    Some(suite.id),
                    value["check_suite"]["id"].as_u64(),
                    "{file}"
                );
                true
            }
            (EventKind::Push(push), "push") => {
                assert_eq!(Some(push.git_ref.as_str()), value["ref"].as_str());
                assert_eq!(
                    push.commits.len(),
                    value["commits"].as_array().unwrap().len(),
                    "{file}"
                );
                true
            }
            (EventKind::Ping(ping), "ping") => {
                assert_eq!(ping.zen.as_deref(), value["zen"].as_str());
                assert!(parsed.zen().is_some(), "{file}: ping without zen");
                true
            }
            (EventKind::Installation(i), "installation") => {
                assert_eq!(
                    i.account.as_deref(),
                    value["installation"]["account"]["login"].as_str()
                );
                true
            }
            (EventKind::InstallationRepositories(r), "installation_repositories") => {
                let added = value["repositories_added"].as_array().map_or(0, Vec::len);
                assert_eq!(r.added.len(), added, "{file}");
                true
            }
            (EventKind::Other, _) => false,
            (kind, _) => panic!("{file}: {event} parsed as {kind:?}"),
        };
        let typed_events = [
            "pull_request",
            "check_run",
            "check_suite",
            "push",
            "ping",
            "installation",
            "installation_repositories",
        ];
        assert_eq!(
            typed,
            typed_events.contains(&event),
            "{file}: typed view expected for {event}"
        );

        for task in &tasks {
            assert_eq!(
                task.repository.as_deref(),
                Some("Codertocat/Hello-World"),
                "{file}"
            );
        }
    }
    assert_eq!(total, 12, "tasks across the corpus");
}

#[test]
fn routed_corpus_tasks_carry_the_payload_facts() {
    let (_, tasks) = route("pull_request", &load("pull_request/opened.payload.json"));
    assert_eq!(
        (tasks[0].pr_number, tasks[0].branch.as_deref()),
        (Some(2), Some("changes"))
    );
    assert_eq!(tasks[0].input_data["action"], "opened");
    assert_eq!(tasks[0].input_data["base_ref"], "master");

    let (_, tasks) = route("check_run", &load("check_run/completed.1.payload.json"));
    assert_eq!(tasks[0].pr_number, Some(2));
    assert_eq!(tasks[0].input_data["conclusion"], "failure");

    let (_, tasks) = route("push", &load("push/with-new-branch.payload.json"));
    assert_eq!(tasks[0].branch.as_deref(), Some("master"));
    assert_eq!(
        tasks[0].commit_sha.as_deref(),
        Some("6113728f27ae82c7b1a177c8d03f9e96e0adf246")
    );
    assert_eq!(tasks[0].input_data["commits"].as_array().unwrap().len(), 1);
}

/// The corpus has no failing check suite; the same real payload with its conclusion changed.
#[test]
fn a_failing_corpus_check_suite_routes_one_task_per_pull_request() {
    let text = String::from_utf8(load("check_suite/completed.payload.json")).unwrap();
    for (conclusion, count) in [
        ("failure", 1),
        ("cancelled", 1),
        ("timed_out", 1),
        ("neutral", 0),
    ] {
        let changed = text.replacen(
            "\"conclusion\": \"success\"",
            &format!("\"conclusion\": \"{conclusion}\""),
            1,
        );
        assert_ne!(changed, text);
        let (_, tasks) = route("check_suite", changed.as_bytes());
        assert_eq!(tasks.len(), count, "{conclusion}");
        if count == 1 {
            assert_eq!(tasks[0].task_type.as_str(), CHECK_SUITE);
            assert_eq!(tasks[0].pr_number, Some(2));
        }
    }
}

#[test]
fn a_form_encoded_corpus_delivery_verifies_and_parses_like_json() {
    let json = load("pull_request/synchronize.payload.json");
    let form =
        serde_urlencoded::to_string([("payload", std::str::from_utf8(&json).unwrap())]).unwrap();
    let verifier = SignatureVerifier::new([WebhookSecret::new("corpus")]);
    let header = verifier.sign(form.as_bytes()).unwrap();
    // The signature is over the raw form body, not the JSON inside it.
    assert_eq!(
        verifier.verify(Some(header.as_bytes()), false, form.as_bytes()),
        Ok(())
    );
    assert!(
        verifier
            .verify(Some(header.as_bytes()), false, &json)
            .is_err()
    );
    let body = Bytes::from(form);
    let decoded = json_body(BodyFormat::Form, &body).unwrap();
    assert_eq!(&decoded[..], &json[..]);
    assert_eq!(
        route("pull_request", &decoded).0,
        route("pull_request", &json).0
    );
}

#[test]
fn an_event_header_that_does_not_match_the_payload_is_a_shape_error_or_ignored_never_a_panic() {
    // A push payload announced as pull_request lacks `pull_request`: a shape error (the
    // receiver stores such a genuine delivery unparsed, with no task).
    let err =
        ParsedEvent::parse("pull_request", &load("push/with-new-branch.payload.json")).unwrap_err();
    assert_eq!(err.as_str(), "payload_shape");
    // A pull_request payload announced as an unknown event: stored, no task.
    let (parsed, tasks) = route("something_new", &load("pull_request/opened.payload.json"));
    assert_eq!(parsed.kind, EventKind::Other);
    assert!(tasks.is_empty());
}
