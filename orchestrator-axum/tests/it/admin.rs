//! Authentication of `/api/v1/*`, `/api/v1/metrics`, `/api/v1/admin/stats`, `/api/v1/admin/cleanup`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode, header};
use orchestrator_axum::ApiConfig;
use orchestrator_core::cleanup::{CLEANUP, CleanupHandler};
use orchestrator_core::engine::{Worker, WorkerConfig};
use orchestrator_core::handler::HandlerRegistry;
use orchestrator_core::queue::StoreQueue;
use orchestrator_core::store::RetentionPolicy;
use serde_json::json;
use tower::ServiceExt;
use uuid::Uuid;

use crate::utils::*;

fn protected() -> Vec<(&'static str, String)> {
    let id = Uuid::new_v4();
    vec![
        ("GET", "/api/v1/webhooks/events".into()),
        ("GET", "/api/v1/webhooks/events/1".into()),
        ("POST", "/api/v1/webhooks/events/1/reprocess".into()),
        ("GET", "/api/v1/tasks".into()),
        ("GET", format!("/api/v1/tasks/{id}")),
        ("POST", format!("/api/v1/tasks/{id}/retry")),
        ("GET", "/api/v1/metrics".into()),
        ("POST", "/api/v1/admin/cleanup".into()),
        ("GET", "/api/v1/admin/stats".into()),
        ("GET", "/api/v1/openapi.json".into()),
    ]
}

#[tokio::test]
async fn every_api_route_needs_the_bearer_token() {
    let app = TestApp::new();
    for (method, path) in protected() {
        for auth in [
            None,
            Some("Bearer wrong-token"),
            Some("Basic YWRtaW46YWRtaW4="),
            Some("Bearer"),
            Some(TOKEN),
        ] {
            let mut req = Request::builder().method(method).uri(&path);
            if let Some(auth) = auth {
                req = req.header(header::AUTHORIZATION, auth);
            }
            let resp = app.send(req.body(Body::empty()).unwrap()).await;
            assert_eq!(
                header(resp.headers(), "www-authenticate").as_deref(),
                Some("Bearer")
            );
            assert_error(resp, StatusCode::UNAUTHORIZED, &path).await;
        }
        // The right token passes (whatever the route then answers, it is not 401).
        let resp = app
            .send(
                authed(Request::builder().method(method).uri(&path))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_ne!(resp.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        // The scheme is case-insensitive.
        let req = Request::builder()
            .method(method)
            .uri(&path)
            .header(header::AUTHORIZATION, format!("bearer {TOKEN}"));
        assert_ne!(
            app.send(req.body(Body::empty()).unwrap()).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn without_a_configured_token_the_api_is_locked() {
    let app = TestApp::with_config(ApiConfig {
        admin_token: None,
        ..config()
    });
    for (method, path) in protected() {
        let resp = app
            .send(
                authed(Request::builder().method(method).uri(&path))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_error(resp, StatusCode::UNAUTHORIZED, &path).await;
    }
    // The receiver is not behind the token.
    assert_eq!(
        app.deliver("pull_request", "x", &pr_opened())
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn json_metrics_agree_with_the_store() {
    let app = TestApp::new();
    let (status, empty) = app.get("/api/v1/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(empty["webhook_events_total"], 0);
    assert_eq!(empty["avg_processing_time_ms"], serde_json::Value::Null);

    app.accept("pull_request", &pr_opened()).await;
    app.accept(
        "pull_request",
        &payload("pull_request/reopened.payload.json"),
    )
    .await;
    app.accept("ping", &payload("ping/payload.json")).await;
    app.clock.advance(Duration::from_secs(1));
    app.fail_all_due().await;
    let (_, m) = app.get("/api/v1/metrics").await;
    assert_eq!(m["webhook_events_total"], 3);
    assert_eq!(m["workflow_tasks_total"], 2);
    assert_eq!(m["task_executions_total"], 2);
    assert_eq!(m["tasks_by_status"]["failed"], 2);
    assert_eq!(m["tasks_by_status"]["pending"], 0);
    assert_eq!(m["events_by_type"], json!({"ping": 1, "pull_request": 2}));
    assert!(m["avg_processing_time_ms"].is_number());
}

#[tokio::test]
async fn admin_stats_give_rates_in_percent() {
    let app = TestApp::new();
    let (status, s) = app.get("/api/v1/admin/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        s,
        json!({
            "recent_activity": {"webhooks_24h": 0, "tasks_24h": 0},
            "error_rates": {"failed_webhooks_24h": 0, "failed_tasks_24h": 0, "webhook_error_rate": 0.0, "task_error_rate": 0.0}
        })
    );
    app.accept("pull_request", &pr_opened()).await;
    app.accept(
        "pull_request",
        &payload("pull_request/reopened.payload.json"),
    )
    .await;
    app.accept("ping", &payload("ping/payload.json")).await;
    app.accept(
        "pull_request",
        &payload("pull_request/synchronize.payload.json"),
    )
    .await;
    // Fail exactly one task (the oldest due).
    let now = orchestrator_core::clock::Clock::now(app.clock.as_ref());
    let queue = orchestrator_core::queue::StoreQueue::new(app.store.clone());
    let claims =
        orchestrator_core::queue::TaskQueue::claim(&queue, "w", 1, Duration::from_secs(60), now)
            .await
            .unwrap();
    orchestrator_core::queue::TaskQueue::finish(
        &queue,
        &claims[0],
        orchestrator_core::store::Finish::Failed {
            error: "boom".into(),
        },
        now,
    )
    .await
    .unwrap();
    let (_, s) = app.get("/api/v1/admin/stats").await;
    assert_eq!(
        s["recent_activity"],
        json!({"webhooks_24h": 4, "tasks_24h": 3})
    );
    assert_eq!(s["error_rates"]["failed_tasks_24h"], 1);
    assert_eq!(s["error_rates"]["task_error_rate"], 33.33);
    assert_eq!(s["error_rates"]["failed_webhooks_24h"], 1);
    assert_eq!(s["error_rates"]["webhook_error_rate"], 25.0);
}

#[tokio::test]
async fn cleanup_commits_a_cleanup_task_whose_output_holds_the_counts() {
    let app = TestApp::new();
    app.accept("pull_request", &pr_opened()).await;
    app.fail_all_due().await;
    app.clock.advance(Duration::from_secs(8 * 24 * 3600));
    let fresh = app
        .accept(
            "pull_request",
            &payload("pull_request/reopened.payload.json"),
        )
        .await;

    // The spec's answer: the cleanup is a task, nothing is removed yet.
    let (status, body) = app.post("/api/v1/admin/cleanup").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "cleanup_triggered");
    let task_id: Uuid = body["task_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    let (_, task) = app.get(&format!("/api/v1/tasks/{task_id}")).await;
    assert_eq!(
        (&task["task_type"], &task["status"]),
        (&json!("cleanup"), &json!("pending"))
    );
    let (_, events) = app.get("/api/v1/webhooks/events").await;
    assert_eq!(events.as_array().unwrap().len(), 2);

    // A worker runs it: the old finished data goes, the counts are in the task's output.
    let mut registry = HandlerRegistry::new();
    registry.register(
        CLEANUP,
        CleanupHandler::new(app.store.clone(), RetentionPolicy::default()),
    );
    let worker = Worker::new(
        Arc::new(StoreQueue::new(app.store.clone())),
        app.store.clone(),
        registry,
        app.clock.clone(),
        WorkerConfig::default(),
    );
    // The fresh delivery's tasks are due too; only the cleanup has a handler here.
    while worker.run_once().await.unwrap() > 0 {}
    let (_, task) = app.get(&format!("/api/v1/tasks/{task_id}")).await;
    assert_eq!(task["status"], "completed", "{task:#}");
    let output = &task["output_data"];
    assert_eq!(
        (
            &output["events_deleted"],
            &output["tasks_deleted"],
            &output["executions_deleted"]
        ),
        (&json!(1), &json!(1), &json!(1)),
        "{task:#}"
    );
    assert_eq!(output["trigger"], "manual");
    let (_, events) = app.get("/api/v1/webhooks/events").await;
    assert_eq!(events.as_array().unwrap().len(), 1);
    assert_eq!(events[0]["id"], fresh["result"]["event_id"]);
}

/// Without a store for tasks from no delivery, the route answers 503 with the error body.
#[tokio::test]
async fn cleanup_without_a_submit_store_answers_503() {
    let store = Arc::new(orchestrator_core::memory::MemoryStore::new());
    let clock = Arc::new(orchestrator_core::clock::ManualClock::default());
    let metrics = Arc::new(orchestrator_axum::Metrics::new().unwrap());
    let state = orchestrator_axum::AppState::builder_for(
        ingestor(store.clone(), clock.clone(), metrics, Default::default()),
        store,
        clock,
    )
    .config(config())
    .build();
    let resp = orchestrator_axum::router(state)
        .oneshot(
            authed(Request::post("/api/v1/admin/cleanup"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_error(
        resp,
        StatusCode::SERVICE_UNAVAILABLE,
        "/api/v1/admin/cleanup",
    )
    .await;
}
