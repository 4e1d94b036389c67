//! The recovery routes: a run started (202, run id), shown and listed; a dry run lists the
//! missing GUIDs and stores nothing; a real run stores the missing delivery as `recovered` with
//! its task; bad input is a 400 with the error body and starts nothing; the metrics move.

use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use orchestrator_core::recovery::{DeliverySummary, HookRef};
use orchestrator_core::store::recovery::RecoveryStore;
use serde_json::{Value, json};

use crate::utils::*;

pub(crate) fn push_missing(app: &TestApp, guid: &str) {
    let hook: HookRef = "repo:octo/repo:42".parse().unwrap();
    let payload: Value = serde_json::from_slice(&pr_opened()).unwrap();
    let summary = DeliverySummary {
        id: 7,
        guid: guid.into(),
        delivered_at: app.clock_now() - chrono::Duration::minutes(5),
        redelivery: false,
        status: "Bad Gateway".into(),
        status_code: 502,
        event: "pull_request".into(),
        action: Some("opened".into()),
        installation_id: None,
        repository_id: None,
        throttled_at: None,
    };
    let headers = vec![
        ("X-GitHub-Event".into(), "pull_request".into()),
        ("X-GitHub-Delivery".into(), guid.into()),
        ("X-GitHub-Hook-ID".into(), "42".into()),
    ];
    app.log.push(&hook, summary, headers, payload);
}

async fn start(app: &TestApp, body: Value) -> (StatusCode, Value) {
    let req = authed(Request::post("/api/v1/admin/recover"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.send(req).await;
    let status = resp.status();
    (status, json(resp).await)
}

/// The run once it ended (the route runs it in the background).
pub(crate) async fn ended(app: &TestApp, run_id: &str) -> Value {
    for _ in 0..200 {
        let (status, run) = app.get(&format!("/api/v1/admin/recover/{run_id}")).await;
        assert_eq!(status, StatusCode::OK);
        if matches!(
            run["status"].as_str(),
            Some("succeeded" | "failed" | "interrupted")
        ) {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("run {run_id} never ended");
}

#[tokio::test]
async fn a_dry_run_lists_the_missing_guid_and_stores_nothing() {
    let app = TestApp::new();
    push_missing(&app, "lost-1");
    let (status, started) = start(&app, json!({"dry_run": true})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(started["status"], "recovery_started");
    let run = ended(&app, started["run_id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["dry_run"], true);
    assert_eq!(run["missing_guids"], json!(["lost-1"]));
    assert_eq!(run["recovered"], 0);
    let (_, events) = app.get("/api/v1/webhooks/events").await;
    assert_eq!(events.as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_run_recovers_the_missing_delivery_with_its_task_and_counts_it() {
    let app = TestApp::new();
    push_missing(&app, "lost-2");
    let (status, started) = start(&app, json!({"hooks": ["repo:octo/repo:42"]})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let run = ended(&app, started["run_id"].as_str().unwrap()).await;
    assert_eq!(
        (run["missing"].clone(), run["recovered"].clone()),
        (json!(1), json!(1))
    );

    let (_, events) = app.get("/api/v1/webhooks/events").await;
    let id = events[0]["id"].as_i64().unwrap();
    let (_, event) = app.get(&format!("/api/v1/webhooks/events/{id}")).await;
    assert_eq!(event["delivery_id"], "lost-2");
    assert_eq!(event["source"], "recovered");
    assert_eq!(event["hook_id"], 42);
    let (_, tasks) = app.get("/api/v1/tasks").await;
    assert_eq!(tasks.as_array().unwrap().len(), 1);

    let (_, runs) = app.get("/api/v1/admin/recover").await;
    assert_eq!(runs[0]["run_id"], started["run_id"]);
    let text = app.metrics.render();
    assert!(
        text.contains(r#"webhook_deliveries_recovered_total{mode="fetch"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"webhook_recovery_runs_total{status="succeeded"} 1"#));
    assert!(text.contains("webhook_recovery_last_success_timestamp_seconds"));
}

#[tokio::test]
async fn bad_input_is_a_400_and_starts_nothing() {
    let app = TestApp::new();
    for body in [
        json!({"since": "yesterday"}),
        json!({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}),
        json!({"hooks": ["repo:nope"]}),
        json!({"mode": "both"}),
        json!({"dry_run": "yes"}),
        json!({"surprise": 1}),
    ] {
        let req = authed(Request::post("/api/v1/admin/recover"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = app.send(req).await;
        assert_error(resp, StatusCode::BAD_REQUEST, "/api/v1/admin/recover").await;
    }
    let (status, _) = app.get("/api/v1/admin/recover/not-a-uuid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app
        .get("/api/v1/admin/recover/0191b7f0-0000-7000-8000-000000000000")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(app.store.list_runs(None, 10).await.unwrap().is_empty());
    // Without the token: 401.
    let req = Request::post("/api/v1/admin/recover")
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(req).await.status(), StatusCode::UNAUTHORIZED);
}
