//! Issue 13: `POST /api/v1/admin/pause` / `resume`, `GET /api/v1/admin/pauses` on the in-memory
//! store: deliveries are still accepted and their tasks wait, shown `paused` with their status
//! unchanged; bad input is a 400 with the error body and changes nothing; a resume frees them.

use axum::body::Body;
use http::{Request, StatusCode};
use orchestrator_core::queue::{StoreQueue, TaskQueue};
use serde_json::{Value, json};

use crate::utils::*;

async fn post_json(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    let resp = app
        .send(
            authed(Request::post(path))
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await;
    let status = resp.status();
    (status, json(resp).await)
}

#[tokio::test]
async fn paused_tasks_wait_visibly_and_a_resume_frees_them() {
    let app = TestApp::new();
    let (status, pause) = post_json(&app, "/api/v1/admin/pause", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{pause}");
    assert_eq!(
        (&pause["repository"], &pause["task_type"]),
        (&Value::Null, &Value::Null)
    );

    // Still received and stored; the task waits, status unchanged, shown paused.
    let accepted = app.accept("pull_request", &pr_opened()).await;
    let task_id = accepted["result"]["task_id"].as_str().unwrap().to_owned();
    let queue = StoreQueue::new(app.store.clone());
    let now = app.store_now();
    let claims = queue
        .claim("w", 10, std::time::Duration::from_secs(60), now)
        .await
        .unwrap();
    assert!(claims.is_empty(), "a paused task is never claimed");
    let (_, task) = app.get(&format!("/api/v1/tasks/{task_id}")).await;
    assert_eq!(
        (&task["status"], &task["paused"]),
        (&json!("pending"), &json!(true))
    );
    let (_, list) = app.get("/api/v1/tasks").await;
    assert_eq!(list[0]["paused"], true, "{list}");
    let (_, pauses) = app.get("/api/v1/admin/pauses").await;
    assert_eq!(pauses.as_array().unwrap().len(), 1, "{pauses}");

    let (status, resumed) = post_json(&app, "/api/v1/admin/resume", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(
        (&resumed["status"], &resumed["republished"]),
        (&json!("resumed"), &json!(1))
    );
    let (_, task) = app.get(&format!("/api/v1/tasks/{task_id}")).await;
    assert_eq!(task["paused"], false);
    let claims = queue
        .claim("w", 10, std::time::Duration::from_secs(60), now)
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    let (status, body) = post_json(&app, "/api/v1/admin/resume", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn bad_pause_input_is_a_400_and_changes_nothing() {
    let app = TestApp::new();
    for body in [
        json!({"repo": "octo/repo"}),
        json!({"task_type": "no_such_type"}),
        json!({"task_type": "Bad Type"}),
        json!({"repository": "not-a-repository"}),
        json!({"repository": 7}),
        json!([1, 2]),
        // `null` is not "every": neither as the body nor as a key's value.
        json!(null),
        json!({"repository": null}),
        json!({"repository": "octo/repo", "task_type": null}),
    ] {
        for path in ["/api/v1/admin/pause", "/api/v1/admin/resume"] {
            let resp = app
                .send(
                    authed(Request::post(path))
                        .header("content-type", "application/json")
                        .body(Body::from(body.to_string()))
                        .unwrap(),
                )
                .await;
            assert_error(resp, StatusCode::BAD_REQUEST, path).await;
        }
    }
    let (_, pauses) = app.get("/api/v1/admin/pauses").await;
    assert_eq!(pauses, json!([]));
    // A scoped pause holds only its repository and type.
    let (status, _) = post_json(
        &app,
        "/api/v1/admin/pause",
        json!({"repository": "octo/other", "task_type": "pull_request_analysis"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let accepted = app.accept("pull_request", &pr_opened()).await;
    let task_id = accepted["result"]["task_id"].as_str().unwrap().to_owned();
    let (_, task) = app.get(&format!("/api/v1/tasks/{task_id}")).await;
    assert_eq!(task["paused"], false, "another repository: {task}");
}
