//! `/api/v1/webhooks/events`: list, filters, validation, detail, reprocess.

use http::StatusCode;
use orchestrator_core::store::TaskStore;
use orchestrator_core::task::TaskStatus;
use uuid::Uuid;

use crate::utils::*;

async fn seeded() -> TestApp {
    let app = TestApp::new();
    app.accept("pull_request", &pr_opened()).await;
    app.accept("ping", &payload("ping/payload.json")).await;
    app.accept("issues", &payload("issues/opened.payload.json"))
        .await;
    app
}

#[tokio::test]
async fn the_list_has_the_spec_fields_newest_first() {
    let app = seeded().await;
    let (status, body) = app.get("/api/v1/webhooks/events").await;
    assert_eq!(status, StatusCode::OK);
    let events = body.as_array().unwrap();
    assert_eq!(events.len(), 3);
    for field in [
        "id",
        "delivery_id",
        "event_type",
        "processed",
        "created_at",
        "error_message",
    ] {
        assert!(
            events[0].get(field).is_some(),
            "missing {field}: {}",
            events[0]
        );
    }
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
}

#[tokio::test]
async fn filters_and_pages_apply() {
    let app = seeded().await;
    let (_, body) = app.get("/api/v1/webhooks/events?event_type=ping").await;
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_eq!(body[0]["event_type"], "ping");
    // The ping and the issue caused no task: processed at once; the pull request did not.
    let (_, body) = app.get("/api/v1/webhooks/events?processed=false").await;
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_eq!(body[0]["event_type"], "pull_request");
    let (_, body) = app.get("/api/v1/webhooks/events?limit=2").await;
    assert_eq!(body.as_array().unwrap().len(), 2);
    let (_, body) = app.get("/api/v1/webhooks/events?limit=2&offset=2").await;
    assert_eq!(body.as_array().unwrap().len(), 1);
    let (_, body) = app.get("/api/v1/webhooks/events?limit=1000&offset=3").await;
    assert_eq!(body.as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn invalid_list_parameters_are_400_with_the_error_body() {
    let app = TestApp::new();
    for query in [
        "limit=0",
        "limit=1001",
        "limit=-5",
        "limit=abc",
        "offset=-1",
        "processed=maybe",
    ] {
        let path = "/api/v1/webhooks/events";
        let resp = app
            .send(
                authed(http::Request::get(format!("{path}?{query}")))
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await;
        assert_error(resp, StatusCode::BAD_REQUEST, path).await;
    }
}

#[tokio::test]
async fn the_detail_has_payload_and_headers() {
    let app = TestApp::new();
    let accepted = app.accept("pull_request", &pr_opened()).await;
    let id = accepted["result"]["event_id"].as_i64().unwrap();
    let (status, event) = app.get(&format!("/api/v1/webhooks/events/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(event["id"], id);
    assert_eq!(event["source"], "github");
    assert_eq!(event["payload"]["action"], "opened");
    // The payload is the received JSON text itself, not a re-serialization of it.
    let raw = app
        .send(
            authed(http::Request::get(format!("/api/v1/webhooks/events/{id}")))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    let text = String::from_utf8(
        http_body_util::BodyExt::collect(raw.into_body())
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    let sent = pr_opened();
    let sent = std::str::from_utf8(&sent).unwrap().trim();
    assert!(
        text.contains(&format!(r#""payload":{sent}"#)),
        "the payload in the detail is not the bytes received"
    );
    assert_eq!(event["headers"]["x-github-event"], "pull_request");
    assert!(event["headers"].get("authorization").is_none());
    for field in [
        "delivery_id",
        "event_type",
        "processed",
        "processing_started_at",
        "processing_completed_at",
        "error_message",
        "retry_count",
        "created_at",
        "updated_at",
    ] {
        assert!(event.get(field).is_some(), "missing {field}");
    }
}

#[tokio::test]
async fn unknown_events_are_404() {
    let app = TestApp::new();
    for path in [
        "/api/v1/webhooks/events/999",
        "/api/v1/webhooks/events/not-a-number",
    ] {
        let resp = app
            .send(
                authed(http::Request::get(path))
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await;
        assert_error(resp, StatusCode::NOT_FOUND, path).await;
    }
    let path = "/api/v1/webhooks/events/999/reprocess";
    let resp = app
        .send(
            authed(http::Request::post(path))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_error(resp, StatusCode::NOT_FOUND, path).await;
}

#[tokio::test]
async fn reprocess_creates_new_tasks_that_exist() {
    let app = TestApp::new();
    let accepted = app.accept("pull_request", &pr_opened()).await;
    let id = accepted["result"]["event_id"].as_i64().unwrap();
    let first = accepted["result"]["task_id"].as_str().unwrap().to_owned();
    app.fail_all_due().await;

    let (status, body) = app
        .post(&format!("/api/v1/webhooks/events/{id}/reprocess"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "reprocessing");
    assert_eq!(body["event_id"], id);
    let new_id: Uuid = body["task_id"].as_str().unwrap().parse().unwrap();
    assert_ne!(new_id.to_string(), first);
    // The defect not to repeat: the answered id must be a stored task.
    let task = app.store.get_task(new_id).await.unwrap().unwrap();
    assert_eq!(task.task.status, TaskStatus::Pending);
    assert_eq!(task.task.webhook_event_id, Some(id));
    let (_, event) = app.get(&format!("/api/v1/webhooks/events/{id}")).await;
    assert_eq!(event["retry_count"], 1);
}
