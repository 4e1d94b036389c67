//! `POST /api/v1/webhooks/github`: every status code of the spec.

use axum::body::Body;
use bytes::Bytes;
use futures::stream;
use http::{Request, StatusCode, header};
use orchestrator_axum::{DuplicatePolicy, RateLimits};
use orchestrator_core::delivery::DeliveryLimits;
use orchestrator_core::store::{EventStore, TaskStore};
use serde_json::json;
use uuid::Uuid;

use crate::utils::*;

const PATH: &str = "/api/v1/webhooks/github";

#[tokio::test]
async fn an_accepted_delivery_answers_the_spec_object_and_is_stored() {
    let app = TestApp::new();
    let delivery = Uuid::new_v4().to_string();
    let resp = app.deliver("pull_request", &delivery, &pr_opened()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = json(resp).await;
    assert_eq!(body["status"], "accepted");
    assert_eq!(body["delivery_id"], delivery.as_str());
    assert_eq!(body["event_type"], "pull_request");
    assert_eq!(body["result"]["status"], "queued");
    assert_eq!(body["result"]["action"], "opened");
    let task_id: Uuid = body["result"]["task_id"].as_str().unwrap().parse().unwrap();

    let event_id = body["result"]["event_id"].as_i64().unwrap();
    let event = app.store.get_event(event_id).await.unwrap().unwrap();
    assert_eq!(event.delivery_id, delivery);
    let task = app.store.get_task(task_id).await.unwrap().unwrap();
    assert_eq!(task.task.task_type.as_str(), "pull_request_analysis");
    assert_eq!(task.task.webhook_event_id, Some(event_id));
}

#[tokio::test]
async fn a_ping_is_stored_without_tasks_and_echoes_zen() {
    let app = TestApp::new();
    let body = app.accept("ping", &payload("ping/payload.json")).await;
    assert_eq!(body["result"]["status"], "stored");
    assert_eq!(body["result"]["task_id"], serde_json::Value::Null);
    assert_eq!(
        body["result"]["zen"],
        "Anything added dilutes everything else."
    );
}

#[tokio::test]
async fn every_corpus_payload_is_accepted() {
    let app = TestApp::new();
    let corpus = corpus();
    assert!(corpus.len() > 100, "corpus too small: {}", corpus.len());
    for (event, file, bytes) in &corpus {
        let resp = app.deliver(event, &Uuid::new_v4().to_string(), bytes).await;
        let status = resp.status();
        let body = json(resp).await;
        assert_eq!(status, StatusCode::OK, "{file}: {body}");
        assert_eq!(body["status"], "accepted", "{file}");
        assert_eq!(body["event_type"], event.as_str(), "{file}");
    }
    let (_, stats) = app.get("/api/v1/metrics").await;
    assert_eq!(stats["webhook_events_total"], corpus.len() as u64);
}

#[tokio::test]
async fn a_form_encoded_delivery_is_accepted() {
    let app = TestApp::new();
    let payload = String::from_utf8(pr_opened()).unwrap();
    let form = serde_urlencoded_body(&payload);
    let req = Request::post(PATH)
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", Uuid::new_v4().to_string())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("x-hub-signature-256", sign(form.as_bytes()))
        .body(Body::from(form))
        .unwrap();
    let resp = app.send(req).await;
    let status = resp.status();
    let body = json(resp).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["status"], "queued");
}

fn serde_urlencoded_body(payload: &str) -> String {
    let mut out = String::from("payload=");
    for b in payload.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[tokio::test]
async fn invalid_headers_or_body_are_400() {
    let app = TestApp::new();
    let body = pr_opened();
    // No X-GitHub-Event.
    let req = Request::post(PATH)
        .header("x-github-delivery", "abc")
        .header("x-hub-signature-256", sign(&body))
        .body(Body::from(body.clone()))
        .unwrap();
    assert_error(app.send(req).await, StatusCode::BAD_REQUEST, PATH).await;
    // No X-GitHub-Delivery.
    let req = Request::post(PATH)
        .header("x-github-event", "push")
        .header("x-hub-signature-256", sign(&body))
        .body(Body::from(body.clone()))
        .unwrap();
    assert_error(app.send(req).await, StatusCode::BAD_REQUEST, PATH).await;
    // A signed body that is not JSON.
    let resp = app.deliver("push", "d-1", b"this is not json").await;
    assert_error(resp, StatusCode::BAD_REQUEST, PATH).await;
    // An unsupported content type.
    let req = Request::post(PATH)
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", "d-2")
        .header(header::CONTENT_TYPE, "text/plain")
        .header("x-hub-signature-256", sign(&body))
        .body(Body::from(body.clone()))
        .unwrap();
    let err = assert_error(app.send(req).await, StatusCode::BAD_REQUEST, PATH).await;
    assert!(
        err["error"].as_str().unwrap().contains("content type"),
        "{err}"
    );
    let (_, events) = app.get("/api/v1/webhooks/events").await;
    assert_eq!(events, json!([]), "nothing refused may be stored");
}

#[tokio::test]
async fn every_signature_failure_is_the_same_401() {
    let app = TestApp::new();
    let body = pr_opened();
    let mut messages = Vec::new();
    let cases: Vec<Option<(&str, String)>> = vec![
        None,
        Some((
            "x-hub-signature-256",
            "sha256=".to_owned() + &"0".repeat(64),
        )),
        Some((
            "x-hub-signature-256",
            "sha1=126f2c800419c60137ce748d7672e77b65cf16d6".to_owned(),
        )),
        Some(("x-hub-signature-256", "garbage".to_owned())),
        Some((
            "x-hub-signature",
            "sha1=126f2c800419c60137ce748d7672e77b65cf16d6".to_owned(),
        )),
        Some(("x-hub-signature-256", sign(b"a different body"))),
    ];
    for case in cases {
        let mut builder = webhook_builder("pull_request", &Uuid::new_v4().to_string());
        if let Some((name, value)) = case {
            builder = builder.header(name, value);
        }
        let resp = app
            .send(builder.body(Body::from(body.clone())).unwrap())
            .await;
        let err = assert_error(resp, StatusCode::UNAUTHORIZED, PATH).await;
        messages.push(err["error"].as_str().unwrap().to_owned());
    }
    messages.dedup();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let (_, events) = app.get("/api/v1/webhooks/events").await;
    assert_eq!(events, json!([]));
}

#[tokio::test]
async fn a_duplicate_delivery_is_409_and_stores_nothing_new() {
    let app = TestApp::new();
    let body = pr_opened();
    assert_eq!(
        app.deliver("pull_request", "same-id", &body).await.status(),
        StatusCode::OK
    );
    let resp = app.deliver("pull_request", "same-id", &body).await;
    assert_error(resp, StatusCode::CONFLICT, PATH).await;
    let (_, events) = app.get("/api/v1/webhooks/events").await;
    assert_eq!(events.as_array().unwrap().len(), 1);
    let (_, tasks) = app.get("/api/v1/tasks").await;
    assert_eq!(tasks.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_duplicate_can_be_acknowledged_by_configuration() {
    let app = TestApp::with_config(config().with_duplicate_policy(DuplicatePolicy::Acknowledge));
    let body = pr_opened();
    let first = json(app.deliver("pull_request", "redelivered", &body).await).await;
    let resp = app.deliver("pull_request", "redelivered", &body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let second = json(resp).await;
    assert_eq!(second["status"], "duplicate");
    assert_eq!(second["result"]["status"], "duplicate");
    assert_eq!(second["result"]["event_id"], first["result"]["event_id"]);
    assert_eq!(second["result"]["task_ids"], json!([]));
    let (_, tasks) = app.get("/api/v1/tasks").await;
    assert_eq!(tasks.as_array().unwrap().len(), 1);
}

fn small_app() -> TestApp {
    TestApp::build(
        config().with_rate_limits(RateLimits::OFF),
        DeliveryLimits {
            max_body_bytes: 1024,
        },
    )
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = small_app();
    let body = vec![b' '; 1025];
    let resp = app.deliver("push", "big-1", &body).await;
    assert_error(resp, StatusCode::PAYLOAD_TOO_LARGE, PATH).await;
    // Exactly at the limit passes the size check (and fails later as not-JSON).
    let resp = app.deliver("push", "big-2", &vec![b' '; 1024]).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_streamed_body_without_length_is_cut_at_the_limit() {
    let app = small_app();
    let chunks = (0..100).map(|_| Ok::<_, std::io::Error>(Bytes::from_static(&[b' '; 100])));
    let req = webhook_builder("push", "stream")
        .header("x-hub-signature-256", sign(b"irrelevant"))
        .body(Body::from_stream(stream::iter(chunks)))
        .unwrap();
    assert_error(app.send(req).await, StatusCode::PAYLOAD_TOO_LARGE, PATH).await;
}

#[tokio::test]
async fn a_lying_content_length_changes_nothing() {
    let app = small_app();
    let body = vec![b' '; 5000];
    let req = webhook_builder("push", "liar")
        .header(header::CONTENT_LENGTH, "10")
        .header("x-hub-signature-256", sign(&body))
        .body(Body::from(body))
        .unwrap();
    assert_error(app.send(req).await, StatusCode::PAYLOAD_TOO_LARGE, PATH).await;
    // A declared length over the limit is refused before reading.
    let req = webhook_builder("push", "declared")
        .header(header::CONTENT_LENGTH, "1000000000")
        .body(Body::empty())
        .unwrap();
    assert_error(app.send(req).await, StatusCode::PAYLOAD_TOO_LARGE, PATH).await;
    assert!(
        app.metrics
            .render()
            .contains(r#"webhook_errors_total{reason="payload_too_large"} 2"#)
    );
}

#[tokio::test]
async fn the_traceparent_reaches_the_tasks() {
    let app = TestApp::new();
    let body = pr_opened();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let req = webhook_builder("pull_request", "traced")
        .header("traceparent", traceparent)
        .header("x-hub-signature-256", sign(&body))
        .body(Body::from(body))
        .unwrap();
    let resp = app.send(req).await;
    assert_eq!(
        header(resp.headers(), "x-request-id").as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    let answer = json(resp).await;
    let task_id = answer["result"]["task_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let task = app.store.get_task(task_id).await.unwrap().unwrap();
    assert_eq!(task.task.trace_context.as_deref(), Some(traceparent));
}

#[tokio::test]
async fn deliveries_are_counted_in_prometheus() {
    let app = TestApp::new();
    app.accept("pull_request", &pr_opened()).await;
    let req = webhook_builder("pull_request", "badly-signed")
        .header("x-hub-signature-256", sign(b"another body"))
        .body(Body::from(pr_opened()))
        .unwrap();
    assert_eq!(app.send(req).await.status(), StatusCode::UNAUTHORIZED);
    let text = app.metrics.render();
    assert!(
        text.contains(r#"webhook_events_total{event_type="pull_request",status="accepted"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"webhook_errors_total{reason="signature_mismatch"} 1"#),
        "{text}"
    );
}
