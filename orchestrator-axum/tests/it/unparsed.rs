//! A genuine delivery is never lost to our parser: a signed JSON object whose typed view fails is
//! stored with its raw bytes and parse error, answered 2xx `stored_unparsed`, counted, creates no
//! task, and can be reprocessed after an upgrade; only bodies that are not JSON are refused.

use bytes::Bytes;
use http::StatusCode;
use orchestrator_core::event::NewEvent;
use orchestrator_core::store::{EventStore, IngestOutcome};
use serde_json::{Value, json};

use crate::utils::*;

/// A pull_request payload whose `pull_request` is null (a shape this version does not read).
fn pr_without_pull_request() -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&pr_opened()).unwrap();
    body["pull_request"] = Value::Null;
    serde_json::to_vec(&body).unwrap()
}

#[tokio::test]
async fn a_signed_json_object_whose_typed_view_fails_is_stored_unparsed() {
    let app = TestApp::new();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("pull_request", pr_without_pull_request()),
        // Another event's body under this event's name.
        ("pull_request", payload("push/with-new-branch.payload.json")),
        (
            "check_run",
            br#"{"action":"completed","check_run":{"name":"ci"}}"#.to_vec(),
        ),
    ];
    for (i, (event, body)) in cases.iter().enumerate() {
        let delivery = format!("unparsed-{i}");
        let resp = app.deliver(event, &delivery, body).await;
        assert_eq!(resp.status(), StatusCode::OK, "{event} case {i}");
        let answer = json(resp).await;
        assert_eq!(answer["status"], "accepted");
        assert_eq!(answer["result"]["status"], "stored_unparsed", "{answer}");
        assert_eq!(answer["result"]["task_ids"], json!([]));
        let id = answer["result"]["event_id"].as_i64().unwrap();
        let (_, stored) = app.get(&format!("/api/v1/webhooks/events/{id}")).await;
        let error = stored["parse_error"].as_str().unwrap();
        assert!(error.contains(event), "{error}");
        assert_eq!(stored["processed"], false);
        assert!(
            stored["error_message"]
                .as_str()
                .unwrap()
                .starts_with("stored unparsed")
        );
        let sent: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(stored["payload"], sent, "the raw bytes are kept");
        // A redelivery of it is a duplicate as usual.
        let again = app.deliver(event, &delivery, body).await;
        assert_error(again, StatusCode::CONFLICT, "/api/v1/webhooks/github").await;
    }
    let (_, tasks) = app.get("/api/v1/tasks").await;
    assert_eq!(tasks, json!([]), "no task for an unparsed delivery");
    let metrics = app.metrics.render();
    for line in [
        r#"webhook_parse_failures_total{event_type="pull_request"} 2"#,
        r#"webhook_parse_failures_total{event_type="check_run"} 1"#,
        r#"webhook_events_total{event_type="pull_request",status="accepted"} 2"#,
    ] {
        assert!(metrics.contains(line), "missing {line}:\n{metrics}");
    }
    // The unprocessed filter finds them for an operator.
    let (_, open) = app.get("/api/v1/webhooks/events?processed=false").await;
    assert_eq!(open.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn bodies_that_are_not_json_objects_are_still_refused_and_not_counted() {
    let app = TestApp::new();
    for (i, body) in [&b"not json"[..], b"[1,2]", b"{\"action\":"]
        .iter()
        .enumerate()
    {
        let resp = app.deliver("pull_request", &format!("bad-{i}"), body).await;
        assert_error(resp, StatusCode::BAD_REQUEST, "/api/v1/webhooks/github").await;
    }
    // A form body without a payload field.
    let body = b"other=1";
    let req = webhook_builder("pull_request", "form-1")
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header("x-hub-signature-256", sign(body))
        .body(axum::body::Body::from(Bytes::from_static(body)))
        .unwrap();
    assert_error(
        app.send(req).await,
        StatusCode::BAD_REQUEST,
        "/api/v1/webhooks/github",
    )
    .await;
    let (_, events) = app.get("/api/v1/webhooks/events").await;
    assert_eq!(events, json!([]));
    assert!(
        !app.metrics
            .render()
            .contains("webhook_parse_failures_total{")
    );
}

#[tokio::test]
async fn reprocessing_what_still_does_not_parse_is_409_and_changes_nothing() {
    let app = TestApp::new();
    let answer = app.accept("pull_request", &pr_without_pull_request()).await;
    let id = answer["result"]["event_id"].as_i64().unwrap();
    let path = format!("/api/v1/webhooks/events/{id}/reprocess");
    let resp = app
        .send(
            authed(http::Request::post(&path))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    let body = assert_error(resp, StatusCode::CONFLICT, &path).await;
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("still does not parse"),
        "{body}"
    );
    let (_, stored) = app.get(&format!("/api/v1/webhooks/events/{id}")).await;
    assert_eq!(stored["retry_count"], 0);
    assert!(stored["parse_error"].is_string());
}

#[tokio::test]
async fn an_event_stored_unparsed_by_an_older_version_is_reprocessed_after_an_upgrade() {
    let app = TestApp::new();
    // What an older version stored: a payload this version parses, with its parse error.
    let event = NewEvent {
        delivery_id: "old-1".into(),
        event_type: "pull_request".into(),
        action: Some("opened".into()),
        source: "github".into(),
        repository: Some("octocat/Hello-World".into()),
        installation_id: None,
        payload: Bytes::from(pr_opened()),
        headers: vec![],
        received_at: app.store_now(),
        parse_error: Some("pull_request payload is missing required fields: head".into()),
    };
    let IngestOutcome::Accepted { event_id, .. } = app.store.ingest(event, vec![]).await.unwrap()
    else {
        panic!("not stored")
    };
    let (status, body) = app
        .post(&format!("/api/v1/webhooks/events/{event_id}/reprocess"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["task_ids"].as_array().unwrap().len(), 1);
    let (_, stored) = app
        .get(&format!("/api/v1/webhooks/events/{event_id}"))
        .await;
    assert_eq!(stored["parse_error"], Value::Null);
    assert_eq!(stored["error_message"], Value::Null);
    assert_eq!(stored["retry_count"], 1);
}
