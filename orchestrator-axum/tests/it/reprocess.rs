//! Reprocess does not double open work: while an event has open tasks the answer is 409 naming
//! them (decided by the store, atomically); on a finished event the routing runs again, and
//! `?force=true` travels on the new tasks' config.

use http::StatusCode;
use orchestrator_core::store::TaskStore;
use serde_json::json;
use uuid::Uuid;

use crate::utils::*;

#[tokio::test]
async fn reprocess_while_tasks_are_open_is_409_naming_them_and_adds_nothing() {
    let app = TestApp::new();
    let accepted = app.accept("pull_request", &pr_opened()).await;
    let id = accepted["result"]["event_id"].as_i64().unwrap();
    let open = accepted["result"]["task_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/webhooks/events/{id}/reprocess");
    let resp = app
        .send(
            authed(http::Request::post(&path))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    let body = assert_error(resp, StatusCode::CONFLICT, &path).await;
    let error = body["error"].as_str().unwrap();
    assert!(error.contains(&open), "{error}");
    assert!(error.contains("open tasks"), "{error}");
    let (_, tasks) = app.get("/api/v1/tasks").await;
    assert_eq!(tasks.as_array().unwrap().len(), 1, "nothing was added");
    let (_, event) = app.get(&format!("/api/v1/webhooks/events/{id}")).await;
    assert_eq!(event["retry_count"], 0);
}

#[tokio::test]
async fn force_travels_on_the_new_tasks_config_and_is_validated() {
    let app = TestApp::new();
    let accepted = app.accept("pull_request", &pr_opened()).await;
    let id = accepted["result"]["event_id"].as_i64().unwrap();
    app.fail_all_due().await;
    let path = format!("/api/v1/webhooks/events/{id}/reprocess");
    let resp = app
        .send(
            authed(http::Request::post(format!("{path}?force=maybe")))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_error(resp, StatusCode::BAD_REQUEST, &path).await;

    let (status, body) = app.post(&format!("{path}?force=true")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new_id: Uuid = body["task_id"].as_str().unwrap().parse().unwrap();
    let task = app.store.get_task(new_id).await.unwrap().unwrap().task;
    assert_eq!(task.config["force"], json!(true));
    // The new task is open now: a second reprocess is refused.
    let (status, _) = app.post(&path).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn the_openapi_document_describes_force_and_the_409() {
    let app = TestApp::new();
    let (status, doc) = app.get("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let op = &doc["paths"]["/api/v1/webhooks/events/{event_id}/reprocess"]["post"];
    let params = op["parameters"].as_array().unwrap();
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "force" && p["in"] == "query"),
        "{op:#}"
    );
    assert!(op["responses"]["409"].is_object(), "{op:#}");
}
