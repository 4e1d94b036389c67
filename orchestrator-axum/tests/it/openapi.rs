//! The OpenAPI document against the real routes.

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::Value;

use crate::utils::*;

const SPEC_ENDPOINTS: &[(&str, &str)] = &[
    ("post", "/api/v1/webhooks/github"),
    ("get", "/api/v1/webhooks/events"),
    ("get", "/api/v1/webhooks/events/{event_id}"),
    ("post", "/api/v1/webhooks/events/{event_id}/reprocess"),
    ("get", "/api/v1/tasks"),
    ("get", "/api/v1/tasks/{task_id}"),
    ("post", "/api/v1/tasks/{task_id}/retry"),
    ("get", "/health"),
    ("get", "/metrics"),
    ("get", "/api/v1/metrics"),
    ("post", "/api/v1/admin/cleanup"),
    ("get", "/api/v1/admin/stats"),
    ("get", "/api/v1/openapi.json"),
];

async fn document(app: &TestApp) -> Value {
    let (status, doc) = app.get("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    doc
}

#[tokio::test]
async fn the_document_lists_exactly_the_spec_endpoints() {
    let app = TestApp::new();
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    documented.sort();
    let mut expected: Vec<(String, String)> = SPEC_ENDPOINTS
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    expected.sort();
    assert_eq!(documented, expected);
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

#[tokio::test]
async fn every_documented_operation_is_served_by_the_router() {
    let app = TestApp::new();
    let accepted = app.accept("pull_request", &pr_opened()).await;
    let event_id = accepted["result"]["event_id"].as_i64().unwrap().to_string();
    let task_id = accepted["result"]["task_id"].as_str().unwrap().to_owned();
    let doc = document(&app).await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let uri = path
                .replace("{event_id}", &event_id)
                .replace("{task_id}", &task_id);
            let req = if path == "/api/v1/webhooks/github" {
                webhook_request("ping", "openapi-check", &payload("ping/payload.json"))
            } else {
                authed(
                    Request::builder()
                        .method(method.to_uppercase().as_str())
                        .uri(&uri),
                )
                .body(Body::empty())
                .unwrap()
            };
            // The retry operation needs a failed task, reprocess an event without open tasks.
            app.fail_all_due().await;
            let resp = app.send(req).await;
            let status = resp.status();
            assert!(status.is_success(), "{method} {path} -> {status}");
            let documented: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            assert!(
                documented.iter().any(|s| s.as_str() == status.as_str()),
                "{method} {path}: {status} not documented"
            );
            if op.get("security").is_some() {
                // Documented as protected: really protected.
                let req = Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(&uri)
                    .body(Body::empty())
                    .unwrap();
                assert_eq!(
                    app.send(req).await.status(),
                    StatusCode::UNAUTHORIZED,
                    "{method} {path}"
                );
            }
        }
    }
}
