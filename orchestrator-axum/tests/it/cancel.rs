//! `POST /api/v1/tasks/{task_id}/cancel`: 200 with the cancelled task, 409 naming the status of
//! a terminal one, 404 unknown, 401 without the token, 503 when no cancel store is configured;
//! `tasks_cancelled_total{reason="manual"}` counts it.

use axum::body::Body;
use http::{Request, StatusCode};
use orchestrator_axum::{AppState, router};
use tower::ServiceExt;

use crate::utils::*;

#[tokio::test]
async fn a_pending_task_is_cancelled_once_and_counted() {
    let app = TestApp::new();
    let accepted = app.accept("pull_request", &pr_opened()).await;
    let id = accepted["result"]["task_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/tasks/{id}/cancel");

    let resp = app
        .send(Request::post(&path).body(Body::empty()).unwrap())
        .await;
    assert_error(resp, StatusCode::UNAUTHORIZED, &path).await;

    let (status, body) = app.post(&path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["task_id"], id.as_str());
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["error_message"], "cancelled by an operator");
    assert_eq!(body["superseded_by"], serde_json::Value::Null);
    assert!(body["executions"].as_array().unwrap().is_empty());
    // Nothing runs it now.
    assert!(app.fail_all_due().await.is_empty());

    let resp = app
        .send(authed(Request::post(&path)).body(Body::empty()).unwrap())
        .await;
    let error = assert_error(resp, StatusCode::CONFLICT, &path).await;
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("already cancelled"),
        "{error}"
    );
    let unknown = format!("/api/v1/tasks/{}/cancel", uuid::Uuid::now_v7());
    let resp = app
        .send(authed(Request::post(&unknown)).body(Body::empty()).unwrap())
        .await;
    assert_error(resp, StatusCode::NOT_FOUND, &unknown).await;
    let resp = app
        .send(
            authed(Request::post("/api/v1/tasks/not-a-uuid/cancel"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_error(
        resp,
        StatusCode::NOT_FOUND,
        "/api/v1/tasks/not-a-uuid/cancel",
    )
    .await;

    let (_, list) = app.get("/api/v1/tasks").await;
    assert_eq!(list[0]["status"], "cancelled");
    let text = app.metrics.render();
    assert!(
        text.contains(r#"tasks_cancelled_total{reason="manual"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"tasks_cancelled_total{reason="superseded"} 0"#));
}

#[tokio::test]
async fn without_a_cancel_store_the_route_answers_503() {
    let app = TestApp::new();
    let accepted = app.accept("pull_request", &pr_opened()).await;
    let id = accepted["result"]["task_id"].as_str().unwrap().to_owned();
    let state = AppState::builder_for(
        ingestor(
            app.store.clone(),
            app.clock.clone(),
            app.metrics.clone(),
            Default::default(),
        ),
        app.store.clone(),
        app.clock.clone(),
    )
    .config(config())
    .build();
    let path = format!("/api/v1/tasks/{id}/cancel");
    let resp = router(state)
        .oneshot(authed(Request::post(&path)).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_error(resp, StatusCode::SERVICE_UNAVAILABLE, &path).await;
}
