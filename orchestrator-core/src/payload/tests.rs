#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;

use super::*;

fn parse(event: &str, json: &str) -> Result<ParsedEvent, PayloadError> {
    ParsedEvent::parse(event, json.as_bytes())
}

#[test]
fn pull_request_fields_are_read() {
    let json = r#"{"action":"opened","number":7,"pull_request":{"number":7,"draft":null,
        "title":"T","html_url":"u","state":"open","merged":null,"head":{"ref":"feat","sha":"abc","repo":{"x":1}},
        "base":{"ref":"main","sha":"def"},"body":null,"labels":[{"name":"x"}]},
        "repository":{"full_name":"o/r","default_branch":"main","created_at":"2020-01-01T00:00:00Z"},
        "installation":{"id":42,"node_id":"x"},"sender":{"login":"octo","id":1},"new_field":{"a":[1,2]}}"#;
    let e = parse("pull_request", json).unwrap();
    assert_eq!(e.name, "pull_request");
    assert_eq!(e.action.as_deref(), Some("opened"));
    assert_eq!(
        e.repository,
        Some(Repository {
            full_name: "o/r".into(),
            default_branch: Some("main".into())
        })
    );
    assert_eq!(e.installation_id, Some(42));
    assert_eq!(e.sender.as_deref(), Some("octo"));
    let EventKind::PullRequest(pr) = e.kind else {
        panic!("not a pull request: {:?}", e.kind)
    };
    assert_eq!(pr.number, 7);
    assert!(!pr.draft);
    assert_eq!(pr.title.as_deref(), Some("T"));
    assert_eq!(pr.head.git_ref.as_deref(), Some("feat"));
    assert_eq!(pr.head.sha.as_deref(), Some("abc"));
    assert_eq!(pr.base.git_ref.as_deref(), Some("main"));
}

#[test]
fn routed_event_without_required_field_is_a_shape_error() {
    for (event, json) in [
        (
            "pull_request",
            r#"{"action":"opened","pull_request":{"title":"no number"}}"#,
        ),
        ("pull_request", r#"{"action":"opened"}"#),
        (
            "pull_request",
            r#"{"action":"opened","pull_request":{"number":"7"}}"#,
        ),
        (
            "check_run",
            r#"{"action":"completed","check_run":{"name":"ci"}}"#,
        ),
        ("check_suite", r#"{"action":"completed","check_suite":{}}"#),
        ("push", r#"{"after":"abc"}"#),
        (
            "push",
            r#"{"ref":"refs/heads/main","commits":[{"message":"m"}]}"#,
        ),
    ] {
        let err = parse(event, json).unwrap_err();
        assert!(
            matches!(err, PayloadError::Shape { .. }),
            "{event} {json}: {err:?}"
        );
        assert_eq!(err.as_str(), "payload_shape");
        // What the receiver keeps of such a delivery: the common fields.
        let common = ParsedEvent::parse_common(event, json.as_bytes()).unwrap();
        assert_eq!(common.kind, EventKind::Other);
        assert_eq!(common.name, event);
    }
}

#[test]
fn common_fields_of_a_payload_whose_typed_view_fails() {
    let json = r#"{"action":"opened","pull_request":null,"repository":{"full_name":"o/r"},
        "installation":{"id":5},"sender":{"login":"octo"}}"#;
    assert!(matches!(
        parse("pull_request", json),
        Err(PayloadError::Shape { .. })
    ));
    let common = ParsedEvent::parse_common("pull_request", json.as_bytes()).unwrap();
    assert_eq!(common.action.as_deref(), Some("opened"));
    assert_eq!(common.repository.unwrap().full_name, "o/r");
    assert_eq!(common.installation_id, Some(5));
    assert_eq!(common.sender.as_deref(), Some("octo"));
    for not_an_object in ["[]", "{", "7", ""] {
        assert!(matches!(
            ParsedEvent::parse_common("pull_request", not_an_object.as_bytes()),
            Err(PayloadError::InvalidJson(_))
        ));
    }
}

#[test]
fn non_objects_and_broken_json_are_invalid_json() {
    for json in [
        "",
        "[]",
        "[\"opened\"]",
        "\"x\"",
        "12",
        "null",
        "{",
        "{\"a\":1} x",
        "{\"a\":}",
    ] {
        for event in ["pull_request", "issues", "ping"] {
            let err = parse(event, json).unwrap_err();
            assert!(
                matches!(err, PayloadError::InvalidJson(_)),
                "{event} {json:?}: {err:?}"
            );
        }
    }
}

#[test]
fn unknown_events_are_accepted_whatever_the_types_of_common_fields() {
    let e = parse(
        "issue_comment",
        r#"{"action":"created","repository":{"full_name":"o/r"},"x":[]}"#,
    )
    .unwrap();
    assert_eq!(e.kind, EventKind::Other);
    assert_eq!(e.action.as_deref(), Some("created"));
    assert_eq!(e.repository.unwrap().full_name, "o/r");

    for json in [
        r#"{"action":5,"repository":"o/r","installation":{"id":"x"},"sender":[1]}"#,
        r#"{"action":{"a":1},"repository":{"full_name":7},"installation":[],"sender":null}"#,
        r#"{"action":null,"repository":null,"installation":{"id":1e99},"sender":{"login":{}}}"#,
        r#"{"action":"a","action":"b"}"#,
        r#"{}"#,
    ] {
        let e = parse("workflow_run", json).unwrap();
        assert_eq!(e.kind, EventKind::Other, "{json}");
        assert!(e.repository.is_none(), "{json}");
        assert!(e.installation_id.is_none(), "{json}");
    }
    // Duplicate keys are tolerated only when the rest is still JSON.
    assert!(parse("workflow_run", r#"{"action":"a","action":"b","x":}"#).is_err());
}

#[test]
fn ping_echoes_zen_and_tolerates_odd_shapes() {
    let e = parse(
        "ping",
        r#"{"zen":"Keep it logically awesome.","hook_id":12,"hook":{"type":"Repository"}}"#,
    )
    .unwrap();
    assert_eq!(e.zen(), Some("Keep it logically awesome."));
    assert_eq!(
        e.kind,
        EventKind::Ping(Ping {
            zen: Some("Keep it logically awesome.".into()),
            hook_id: Some(12)
        })
    );
    let e = parse("ping", r#"{"zen":false,"hook_id":"x"}"#).unwrap();
    assert_eq!(e.zen(), None);
    assert_eq!(parse("issues", r#"{"zen":"z"}"#).unwrap().zen(), None);
}

#[test]
fn installation_events_read_account_and_repositories_or_fall_back() {
    let e = parse(
        "installation",
        r#"{"action":"created","installation":{"id":5,"account":{"login":"org"}},
            "repositories":[{"full_name":"org/a","id":1},{"full_name":"org/b"}],"sender":{"login":"u"}}"#,
    )
    .unwrap();
    assert_eq!(e.installation_id, Some(5));
    assert_eq!(
        e.kind,
        EventKind::Installation(Installation {
            account: Some("org".into()),
            repositories: vec!["org/a".into(), "org/b".into()],
        })
    );
    // A shape GitHub does not send is still accepted, as an untyped event.
    let e = parse(
        "installation",
        r#"{"action":"created","repositories":[{"name":"no full name"}]}"#,
    )
    .unwrap();
    assert_eq!(e.kind, EventKind::Other);
    assert_eq!(e.action.as_deref(), Some("created"));

    let e = parse(
        "installation_repositories",
        r#"{"action":"added","repository_selection":"selected","repositories_added":[{"full_name":"o/x"}],
            "repositories_removed":[],"installation":{"id":9}}"#,
    )
    .unwrap();
    assert_eq!(e.installation_id, Some(9));
    assert_eq!(
        e.kind,
        EventKind::InstallationRepositories(InstallationRepositories {
            repository_selection: Some("selected".into()),
            added: vec!["o/x".into()],
            removed: vec![],
        })
    );
}

#[test]
fn push_ignores_integer_timestamps_and_reads_commits() {
    let json = r#"{"ref":"refs/heads/main","before":"a","after":"b","created":false,"deleted":false,
        "forced":true,"compare":"c","pusher":{"name":"p","email":null},
        "commits":[{"id":"b","message":"first\nsecond","added":["x"],"removed":[],"modified":["y"]}],
        "repository":{"full_name":"o/r","default_branch":"main","created_at":1557933565,"pushed_at":1557933565}}"#;
    let e = parse("push", json).unwrap();
    let EventKind::Push(push) = &e.kind else {
        panic!("{:?}", e.kind)
    };
    assert_eq!(push.branch(), Some("main"));
    assert!(push.forced);
    assert_eq!(push.pusher.name.as_deref(), Some("p"));
    assert_eq!(push.commits.len(), 1);
    assert_eq!(push.commits[0].modified, vec!["y".to_owned()]);
    assert_eq!(
        e.repository.unwrap().default_branch.as_deref(),
        Some("main")
    );
}

#[test]
fn check_run_null_lists_read_as_empty() {
    let e = parse(
        "check_run",
        r#"{"action":"completed","check_run":{"id":1,"name":"ci","conclusion":"failure","pull_requests":null,"output":null}}"#,
    )
    .unwrap();
    let EventKind::CheckRun(run) = e.kind else {
        panic!()
    };
    assert!(run.pull_requests.is_empty());
    assert_eq!(run.conclusion.as_deref(), Some("failure"));
}

#[test]
fn json_body_decodes_form_payload_field() {
    let body = Bytes::from_static(b"payload=%7B%22action%22%3A%22opened%22%7D&other=1");
    assert_eq!(
        json_body(BodyFormat::Form, &body).unwrap(),
        Bytes::from_static(br#"{"action":"opened"}"#)
    );
    let e = ParsedEvent::parse("issues", &json_body(BodyFormat::Form, &body).unwrap()).unwrap();
    assert_eq!(e.action.as_deref(), Some("opened"));

    let err = json_body(BodyFormat::Form, &Bytes::from_static(b"other=1")).unwrap_err();
    assert_eq!(err.as_str(), "payload_invalid_form");
    let json = Bytes::from_static(b"{}");
    assert_eq!(json_body(BodyFormat::Json, &json).unwrap(), json);
}
