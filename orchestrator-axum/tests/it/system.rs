//! `/health`, `/metrics`, unknown routes, wrong methods, correlation ids.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use http::{Request, StatusCode};
use orchestrator_axum::{ApiConfig, AppState, HealthCheck, HealthStatus, router};
use orchestrator_core::breaker::{BreakerConfig, BreakerSet, CircuitBreaker};
use orchestrator_core::delivery::DeliveryLimits;
use orchestrator_core::observe::Observer;
use tower::ServiceExt;

use crate::utils::*;

async fn get_open(app: &axum::Router, path: &str) -> axum::response::Response {
    app.clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn health_is_healthy_with_the_spec_fields() {
    let app = TestApp::new();
    app.clock.advance(Duration::from_secs(3600));
    let resp = get_open(&app.router, "/health").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = json(resp).await;
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["checks"]["database"], "healthy");
    assert_eq!(body["checks"]["celery"], "healthy");
    assert_eq!(body["uptime"], 3600.0);
    assert_eq!(body["queue_backend"], "memory");
    assert!(body["timestamp"].is_string());
    assert!(body.get("reasons").is_none(), "nothing to explain: {body}");
}

struct GitHubDown;

#[async_trait]
impl HealthCheck for GitHubDown {
    fn name(&self) -> &str {
        "github_api"
    }
    async fn check(&self) -> HealthStatus {
        HealthStatus::Unhealthy
    }
}

fn app_with(breakers: BreakerSet, extra: Option<Arc<dyn HealthCheck>>) -> (TestApp, axum::Router) {
    let base = TestApp::new();
    let mut builder = AppState::builder_for(
        ingestor(
            base.store.clone(),
            base.clock.clone(),
            base.metrics.clone(),
            DeliveryLimits::default(),
        ),
        base.store.clone(),
        base.clock.clone(),
    )
    .config(config())
    .metrics(base.metrics.clone())
    .breakers(breakers);
    if let Some(check) = extra {
        builder = builder.health_check(check);
    }
    let r = router(builder.build());
    (base, r)
}

#[tokio::test]
async fn an_open_breaker_or_a_failing_extra_check_is_degraded_but_200() {
    let breakers = BreakerSet::new();
    let (base, _) = app_with(BreakerSet::new(), None);
    let breaker = Arc::new(CircuitBreaker::new(
        "github",
        BreakerConfig::default(),
        base.clock.clone(),
    ));
    breakers.add(breaker.clone());
    let (_, app) = app_with(breakers, None);
    let body = json(get_open(&app, "/health").await).await;
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["breakers"]["github"], "closed");
    for _ in 0..5 {
        breaker.on_failure();
    }
    let resp = get_open(&app, "/health").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = json(resp).await;
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["breakers"]["github"], "open");
    assert!(body["reasons"]["breaker:github"].is_string(), "{body}");

    let (_, app) = app_with(BreakerSet::new(), Some(Arc::new(GitHubDown)));
    let resp = get_open(&app, "/health").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = json(resp).await;
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"]["github_api"], "unhealthy");
}

#[tokio::test]
async fn prometheus_metrics_are_open_and_refresh_queue_depth() {
    let app = TestApp::new();
    app.accept("pull_request", &pr_opened()).await;
    app.accept(
        "pull_request",
        &payload("pull_request/reopened.payload.json"),
    )
    .await;
    let resp = get_open(&app.router, "/metrics").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        header(resp.headers(), "content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let text = String::from_utf8(body_bytes(resp).await.to_vec()).unwrap();
    for line in [
        r#"task_queue_size{state="ready"} 2"#,
        r#"celery_queue_size{queue="memory"} 2"#,
        r#"workflow_tasks_total{status="created",task_type="pull_request_analysis"} 2"#,
        r#"webhook_events_total{event_type="pull_request",status="accepted"} 2"#,
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // Names an embedder's server feeds (present once observed).
    app.metrics.github_request("pulls.files", 200);
    app.metrics.codegen_run("created");
    let text = String::from_utf8(
        body_bytes(get_open(&app.router, "/metrics").await)
            .await
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains(r#"github_api_requests_total{endpoint="pulls.files",status="200"} 1"#));
    assert!(text.contains(r#"codegen_agent_tasks_total{outcome="created"} 1"#));
}

#[tokio::test]
async fn metrics_can_be_put_behind_the_token() {
    let app = TestApp::with_config(ApiConfig {
        metrics_require_token: true,
        ..config()
    });
    assert_error(
        get_open(&app.router, "/metrics").await,
        StatusCode::UNAUTHORIZED,
        "/metrics",
    )
    .await;
    let resp = app
        .send(
            authed(Request::get("/metrics"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    // Health stays open.
    assert_eq!(
        get_open(&app.router, "/health").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_get_the_error_body() {
    let app = TestApp::new();
    assert_error(
        get_open(&app.router, "/nope").await,
        StatusCode::NOT_FOUND,
        "/nope",
    )
    .await;
    let path = "/api/v1/webhooks/github";
    assert_error(
        get_open(&app.router, path).await,
        StatusCode::METHOD_NOT_ALLOWED,
        path,
    )
    .await;
    let resp = app
        .send(Request::delete("/health").body(Body::empty()).unwrap())
        .await;
    assert_error(resp, StatusCode::METHOD_NOT_ALLOWED, "/health").await;
}

#[tokio::test]
async fn the_correlation_id_is_taken_from_the_request_or_generated() {
    let app = TestApp::new();
    let req = Request::get("/nope")
        .header("x-request-id", "req-42")
        .body(Body::empty())
        .unwrap();
    let body = assert_error(app.send(req).await, StatusCode::NOT_FOUND, "/nope").await;
    assert_eq!(body["correlation_id"], "req-42");
    let resp = get_open(&app.router, "/health").await;
    let generated = header(resp.headers(), "x-request-id").unwrap();
    assert!(uuid::Uuid::parse_str(&generated).is_ok());
    let other = header(
        get_open(&app.router, "/health").await.headers(),
        "x-request-id",
    )
    .unwrap();
    assert_ne!(generated, other);
}

struct Panicking;

#[async_trait]
impl HealthCheck for Panicking {
    fn name(&self) -> &str {
        "panicking"
    }
    async fn check(&self) -> HealthStatus {
        panic!("a bug in a health check")
    }
}

#[tokio::test]
async fn a_panicking_handler_is_a_generic_500_with_the_error_body() {
    let (_, app) = app_with(BreakerSet::new(), Some(Arc::new(Panicking)));
    let body = assert_error(
        get_open(&app, "/health").await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "/health",
    )
    .await;
    assert_eq!(body["error"], "internal server error");
}

#[tokio::test]
async fn the_document_follows_a_moved_receiver() {
    let app = TestApp::with_config(ApiConfig {
        webhook_path: "/hooks/github".into(),
        ..config()
    });
    let (_, doc) = app.get("/api/v1/openapi.json").await;
    assert!(doc["paths"]["/hooks/github"]["post"].is_object());
    assert!(doc["paths"].get("/api/v1/webhooks/github").is_none());
    let mut req = webhook_request("ping", "moved", &payload("ping/payload.json"));
    *req.uri_mut() = "/hooks/github".parse().unwrap();
    assert_eq!(app.send(req).await.status(), StatusCode::OK);
}
