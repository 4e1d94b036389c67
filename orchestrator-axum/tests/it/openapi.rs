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
    ("post", "/api/v1/tasks/{task_id}/cancel"),
    ("get", "/health"),
    ("get", "/metrics"),
    ("get", "/api/v1/metrics"),
    ("post", "/api/v1/admin/cleanup"),
    ("post", "/api/v1/admin/pause"),
    ("post", "/api/v1/admin/resume"),
    ("get", "/api/v1/admin/pauses"),
    ("get", "/api/v1/admin/stats"),
    ("get", "/api/v1/openapi.json"),
    ("post", "/api/v1/tasks/retry"),
    ("post", "/api/v1/webhooks/events/reprocess"),
    ("get", "/api/v1/operations"),
    ("get", "/api/v1/operations/{operation_id}"),
    ("delete", "/api/v1/operations/{operation_id}"),
    // Issue 14: recovery from GitHub's delivery log.
    ("post", "/api/v1/admin/recover"),
    ("get", "/api/v1/admin/recover"),
    ("get", "/api/v1/admin/recover/{run_id}"),
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
    let operation = app
        .send(
            authed(Request::post("/api/v1/tasks/retry"))
                .body(Body::from(r#"{"all":true}"#))
                .unwrap(),
        )
        .await;
    assert_eq!(operation.status(), StatusCode::ACCEPTED);
    let operation_id = json(operation).await["operation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, started) = app.post("/api/v1/admin/recover").await;
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    let doc = document(&app).await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            // Cancel needs a task that is still open; the others a failed one (below).
            let cancel = path.ends_with("/cancel");
            let task_id = if cancel {
                let open = app.accept("pull_request", &pr_opened()).await;
                open["result"]["task_id"].as_str().unwrap().to_owned()
            } else {
                task_id.clone()
            };
            let uri = path
                .replace("{event_id}", &event_id)
                .replace("{task_id}", &task_id)
                .replace("{operation_id}", &operation_id)
                .replace("{run_id}", &run_id);
            // Bulk operations need a filter.
            let body = if path.ends_with("/tasks/retry") || path.ends_with("/events/reprocess") {
                Body::from(r#"{"all":true}"#)
            } else {
                Body::empty()
            };
            let req = if path == "/api/v1/webhooks/github" {
                webhook_request("ping", "openapi-check", &payload("ping/payload.json"))
            } else {
                authed(
                    Request::builder()
                        .method(method.to_uppercase().as_str())
                        .uri(&uri),
                )
                .body(body)
                .unwrap()
            };
            // The retry operation needs a failed task, reprocess an event without open tasks.
            if !cancel {
                app.fail_all_due().await;
            }
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

/// The schema of the query parameter `name` of `GET path`.
fn query_schema<'a>(doc: &'a Value, path: &str, name: &str) -> &'a Value {
    doc["paths"][path]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} not a parameter of {path}"))
        .get("schema")
        .unwrap()
}

#[tokio::test]
async fn the_document_states_the_limits_the_server_enforces() {
    let app = TestApp::new();
    let doc = document(&app).await;
    for path in ["/api/v1/webhooks/events", "/api/v1/tasks"] {
        let limit = query_schema(&doc, path, "limit");
        assert_eq!(
            (limit["minimum"].as_i64(), limit["maximum"].as_i64()),
            (Some(1), Some(1000)),
            "{path}"
        );
        assert_eq!(query_schema(&doc, path, "offset")["minimum"], 0, "{path}");
        // And the server enforces exactly that.
        for (query, status) in [
            ("limit=1000&offset=0", 200),
            ("limit=1001", 400),
            ("limit=0", 400),
            ("offset=-1", 400),
        ] {
            let (got, _) = app.get(&format!("{path}?{query}")).await;
            assert_eq!(got.as_u16(), status, "{path}?{query}");
        }
    }
    let status = query_schema(&doc, "/api/v1/tasks", "status");
    let status = &doc["components"]["schemas"][status["$ref"]
        .as_str()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap()];
    assert_eq!(
        status["enum"],
        serde_json::json!([
            "pending",
            "running",
            "retrying",
            "completed",
            "failed",
            "cancelled"
        ])
    );
    let event_type = query_schema(&doc, "/api/v1/webhooks/events", "event_type");
    assert_eq!(event_type["pattern"], "^[a-z0-9_]{1,64}$");
    assert_eq!(
        app.get("/api/v1/webhooks/events?event_type=Push!").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.get("/api/v1/webhooks/events?event_type=push").await.0,
        StatusCode::OK
    );

    let headers = doc["paths"]["/api/v1/webhooks/github"]["post"]["parameters"]
        .as_array()
        .unwrap();
    for header in headers {
        assert_eq!(header["required"], true, "{header}");
        assert!(header["schema"]["pattern"].is_string(), "{header}");
    }
}

#[tokio::test]
async fn every_error_answer_is_documented_with_the_error_body_and_links_lead_to_the_details() {
    let app = TestApp::new();
    let doc = document(&app).await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || (status.starts_with('5') && path != "/health") {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
            if path.starts_with("/api/v1/") && path != "/api/v1/webhooks/github" {
                for status in ["401", "429", "503"] {
                    assert!(
                        op["responses"][status].is_object(),
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    let ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        ids.len(),
        "operation ids are not unique: {ids:?}"
    );
    for (path, method, target) in [
        ("/api/v1/webhooks/events", "get", "get_event"),
        ("/api/v1/webhooks/events", "get", "reprocess_event"),
        ("/api/v1/tasks", "get", "get_task"),
        ("/api/v1/tasks/{task_id}", "get", "retry_task"),
    ] {
        let links = doc["paths"][path][method]["responses"]["200"]["links"]
            .as_object()
            .unwrap();
        let link = links
            .values()
            .find(|l| l["operationId"] == target)
            .unwrap_or_else(|| panic!("no link from {method} {path} to {target}: {links:?}"));
        assert!(link.get("operation_id").is_none(), "{link}");
        assert!(ids.contains(&target), "{target} is not an operation");
    }
}
