//! Bulk operations over HTTP: bad input is a 400 with the error body and changes nothing, a dry
//! run counts, a real request answers 202 with an operation to follow, list, and cancel.

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use orchestrator_axum::{AppState, Metrics, router};
use orchestrator_core::clock::ManualClock;
use orchestrator_core::memory::MemoryStore;
use orchestrator_core::store::TaskStore;
use orchestrator_core::task::TaskStatus;
use serde_json::Value;
use tower::ServiceExt;
use uuid::Uuid;

use crate::utils::*;

async fn post_json(app: &TestApp, path: &str, body: &str) -> (StatusCode, Value) {
    let resp = app
        .send(
            authed(Request::post(path))
                .header("content-type", "application/json")
                .body(Body::from(body.to_owned()))
                .unwrap(),
        )
        .await;
    let status = resp.status();
    (status, json(resp).await)
}

async fn delete(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let resp = app
        .send(authed(Request::delete(path)).body(Body::empty()).unwrap())
        .await;
    let status = resp.status();
    (status, json(resp).await)
}

/// An app with two failed tasks (one delivery).
async fn with_failed_tasks() -> (TestApp, Vec<Uuid>) {
    let app = TestApp::new();
    app.accept("pull_request", &pr_opened()).await;
    let failed = app.fail_all_due().await;
    assert!(!failed.is_empty());
    (app, failed)
}

#[tokio::test]
async fn bad_input_is_a_400_with_the_error_body_and_changes_nothing() {
    let (app, failed) = with_failed_tasks().await;
    let cases = [
        (
            "/api/v1/tasks/retry",
            r#"{"status":"failed","colour":"red"}"#,
            "unknown field",
        ),
        (
            "/api/v1/tasks/retry",
            r#"{"pr_number":"seven"}"#,
            "invalid type",
        ),
        (
            "/api/v1/tasks/retry",
            r#"{"status":"running"}"#,
            "only failed or cancelled",
        ),
        ("/api/v1/tasks/retry", "{}", "\"all\": true"),
        (
            "/api/v1/tasks/retry",
            "not json",
            "invalid operation request",
        ),
        (
            "/api/v1/tasks/retry",
            r#"{"created_after":"2026-05-01T00:00:00Z","created_before":"2026-04-01T00:00:00Z"}"#,
            "must be before",
        ),
        (
            "/api/v1/webhooks/events/reprocess",
            r#"{"task_type":"x"}"#,
            "filter tasks",
        ),
        (
            "/api/v1/webhooks/events/reprocess",
            r#"{"all":"yes"}"#,
            "invalid type",
        ),
        ("/api/v1/webhooks/events/reprocess", "[]", "JSON object"),
    ];
    for (path, body, reason) in cases {
        let (status, error) = post_json(&app, path, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}");
        assert_eq!(error["status_code"], 400);
        assert_eq!(error["path"], path);
        assert!(error["correlation_id"].is_string());
        let message = error["error"].as_str().unwrap();
        assert!(message.contains(reason), "{body}: {message}");
    }
    let (status, list) = app.get("/api/v1/operations").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, Value::Array(Vec::new()), "nothing was stored");
    for id in failed {
        let task = app.store.get_task(id).await.unwrap().unwrap().task;
        assert_eq!(task.status, TaskStatus::Failed, "nothing was retried");
    }
}

#[tokio::test]
async fn a_dry_run_counts_and_samples_without_changing_anything() {
    let (app, failed) = with_failed_tasks().await;
    let (status, body) = post_json(
        &app,
        "/api/v1/tasks/retry",
        r#"{"status":"failed","repository":"octo-org/hello-world","dry_run":true}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["dry_run"], true);
    let repository_tasks = body["matched"].as_u64().unwrap();
    let (_, none) = post_json(
        &app,
        "/api/v1/tasks/retry",
        r#"{"repository":"nobody/nothing","dry_run":true}"#,
    )
    .await;
    assert_eq!(none["matched"], 0);
    let (_, all) = post_json(
        &app,
        "/api/v1/tasks/retry",
        r#"{"all":true,"dry_run":true}"#,
    )
    .await;
    assert_eq!(all["matched"].as_u64().unwrap(), failed.len() as u64);
    assert!(repository_tasks <= failed.len() as u64);
    let sample: Vec<Uuid> = serde_json::from_value(all["task_ids"].clone()).unwrap();
    assert_eq!(sample.len(), failed.len());
    for id in failed {
        assert!(sample.contains(&id));
        let task = app.store.get_task(id).await.unwrap().unwrap().task;
        assert_eq!(task.status, TaskStatus::Failed);
    }
    let (_, list) = app.get("/api/v1/operations").await;
    assert_eq!(list, Value::Array(Vec::new()));
}

#[tokio::test]
async fn an_operation_is_accepted_followed_listed_and_cancelled() {
    let (app, failed) = with_failed_tasks().await;
    let (status, op) = post_json(&app, "/api/v1/tasks/retry", r#"{"error_contains":""}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{op}");
    let (status, op) = post_json(&app, "/api/v1/tasks/retry", r#"{"status":"failed"}"#).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{op}");
    assert_eq!(op["status"], "pending");
    assert_eq!(op["kind"], "retry_tasks");
    assert_eq!(op["matched"].as_u64().unwrap(), failed.len() as u64);
    assert_eq!(
        (op["done"].clone(), op["failed"].clone()),
        (0.into(), 0.into())
    );
    assert_eq!(op["filter"], serde_json::json!({"status": "failed"}));
    let id = op["operation_id"].as_str().unwrap().to_owned();
    // The route only stores it: the tasks are untouched until a runner takes it.
    for task in &failed {
        let task = app.store.get_task(*task).await.unwrap().unwrap().task;
        assert_eq!(task.status, TaskStatus::Failed);
    }
    let (status, got) = app.get(&format!("/api/v1/operations/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, op);
    let (_, reprocess) = post_json(
        &app,
        "/api/v1/webhooks/events/reprocess",
        r#"{"event_type":"pull_request","action":"opened","force":true}"#,
    )
    .await;
    assert_eq!(reprocess["kind"], "reprocess_events");
    assert_eq!(reprocess["matched"], 1);
    assert_eq!(reprocess["force"], true);
    let (_, list) = app.get("/api/v1/operations").await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["operation_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [reprocess["operation_id"].as_str().unwrap(), id.as_str()]
    );
    let (status, limited) = app.get("/api/v1/operations?limit=1&offset=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(limited.as_array().unwrap().len(), 1);
    // By cursor: after the newest comes the first one, after that nothing.
    let after_newest = format!("/api/v1/operations?limit=1&before={}", ids[0]);
    let (status, page) = app.get(&after_newest).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page[0]["operation_id"], id.as_str(), "{page}");
    let (_, page) = app.get(&format!("/api/v1/operations?before={id}")).await;
    assert_eq!(page, serde_json::json!([]));
    assert_eq!(
        app.get("/api/v1/operations?before=nope").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.get("/api/v1/operations?limit=0").await.0,
        StatusCode::BAD_REQUEST
    );

    let (status, cancelled) = delete(&app, &format!("/api/v1/operations/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["finished_at"].is_string());
    let (status, again) = delete(&app, &format!("/api/v1/operations/{id}")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        again["error"]
            .as_str()
            .unwrap()
            .contains("already cancelled")
    );
    let unknown = Uuid::now_v7();
    assert_eq!(
        delete(&app, &format!("/api/v1/operations/{unknown}"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/api/v1/operations/nope").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn operations_need_the_admin_token_and_a_configured_store() {
    let app = TestApp::new();
    let resp = app
        .send(
            Request::post("/api/v1/tasks/retry")
                .body(Body::from(r#"{"all":true}"#))
                .unwrap(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // A state built without an operation store answers 503 with the error body.
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::default());
    let metrics = Arc::new(Metrics::new().unwrap());
    let state = AppState::builder_for(
        ingestor(store.clone(), clock.clone(), metrics, Default::default()),
        store,
        clock,
    )
    .config(config())
    .build();
    let resp = router(state)
        .oneshot(
            authed(Request::get("/api/v1/operations"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(resp).await["status_code"], 503);
}
