//! `/api/v1/tasks`: list, filters, detail with executions, retry.

use axum::body::Body;
use http::{Request, StatusCode};
use uuid::Uuid;

use crate::utils::*;

#[tokio::test]
async fn the_list_has_the_spec_fields_and_filters() {
    let app = TestApp::new();
    app.accept("pull_request", &pr_opened()).await;
    app.accept(
        "pull_request",
        &payload("pull_request/reopened.payload.json"),
    )
    .await;
    let (status, body) = app.get("/api/v1/tasks").await;
    assert_eq!(status, StatusCode::OK);
    let tasks = body.as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    for field in [
        "id",
        "task_id",
        "task_type",
        "status",
        "repository",
        "pr_number",
        "created_at",
        "completed_at",
        "error_message",
        "codegen_task_url",
    ] {
        assert!(
            tasks[0].get(field).is_some(),
            "missing {field}: {}",
            tasks[0]
        );
    }
    assert_eq!(tasks[0]["task_type"], "pull_request_analysis");
    assert_eq!(tasks[0]["status"], "pending");
    let repo = tasks[0]["repository"].as_str().unwrap().to_owned();

    let (_, body) = app
        .get("/api/v1/tasks?status=pending&task_type=pull_request_analysis")
        .await;
    assert_eq!(body.as_array().unwrap().len(), 2);
    let (_, body) = app.get("/api/v1/tasks?status=failed").await;
    assert_eq!(body.as_array().unwrap().len(), 0);
    let (_, body) = app.get(&format!("/api/v1/tasks?repository={repo}")).await;
    assert_eq!(body.as_array().unwrap().len(), 2);
    let (_, body) = app.get("/api/v1/tasks?repository=nobody/nothing").await;
    assert_eq!(body.as_array().unwrap().len(), 0);
    let (_, body) = app.get("/api/v1/tasks?limit=1&offset=1").await;
    assert_eq!(body.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn invalid_list_parameters_are_400() {
    let app = TestApp::new();
    for query in [
        "limit=0",
        "limit=1001",
        "offset=-1",
        "status=sleeping",
        "task_type=Not%20Valid",
        "limit=x",
    ] {
        let path = "/api/v1/tasks";
        let resp = app
            .send(
                authed(Request::get(format!("{path}?{query}")))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_error(resp, StatusCode::BAD_REQUEST, path).await;
    }
}

#[tokio::test]
async fn the_detail_shows_executions() {
    let app = TestApp::new();
    app.accept("pull_request", &pr_opened()).await;
    let failed = app.fail_all_due().await;
    let (status, task) = app.get(&format!("/api/v1/tasks/{}", failed[0])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(task["status"], "failed");
    assert_eq!(task["error_message"], "boom");
    for field in [
        "webhook_event_id",
        "priority",
        "branch",
        "commit_sha",
        "config",
        "input_data",
        "output_data",
        "started_at",
        "retry_count",
        "max_retries",
        "codegen_task_id",
        "updated_at",
    ] {
        assert!(task.get(field).is_some(), "missing {field}");
    }
    let executions = task["executions"].as_array().unwrap();
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0]["status"], "failed");
    assert!(
        executions[0]["execution_id"]
            .as_str()
            .unwrap()
            .parse::<Uuid>()
            .is_ok()
    );
}

#[tokio::test]
async fn unknown_tasks_are_404() {
    let app = TestApp::new();
    let unknown = Uuid::new_v4();
    for (method, path) in [
        ("GET", format!("/api/v1/tasks/{unknown}")),
        ("GET", "/api/v1/tasks/not-a-uuid".to_owned()),
        ("POST", format!("/api/v1/tasks/{unknown}/retry")),
    ] {
        let req = authed(Request::builder().method(method).uri(&path))
            .body(Body::empty())
            .unwrap();
        assert_error(app.send(req).await, StatusCode::NOT_FOUND, &path).await;
    }
}

#[tokio::test]
async fn a_failed_task_is_retried_and_a_pending_one_is_409() {
    let app = TestApp::new();
    let accepted = app.accept("pull_request", &pr_opened()).await;
    let id = accepted["result"]["task_id"].as_str().unwrap().to_owned();

    let path = format!("/api/v1/tasks/{id}/retry");
    let resp = app
        .send(authed(Request::post(&path)).body(Body::empty()).unwrap())
        .await;
    assert_error(resp, StatusCode::CONFLICT, &path).await;

    app.fail_all_due().await;
    let (status, body) = app.post(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "retrying");
    assert_eq!(body["task_id"], id.as_str());
    assert_eq!(body["celery_task_id"], id.as_str());
    let (_, task) = app.get(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(task["status"], "pending");
    assert_eq!(task["error_message"], serde_json::Value::Null);
}
