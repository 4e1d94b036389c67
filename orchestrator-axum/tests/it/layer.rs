//! The receiver mounted inside a foreign axum application, as a layer and as a service.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use orchestrator_axum::{WebhookLayer, webhook_service};
use tower::ServiceExt;

use crate::utils::*;

fn foreign_app() -> Router {
    Router::new()
        .route("/", get(|| async { "the app's own page" }))
        .route(
            "/api/v1/webhooks/events",
            get(|| async { "the app's own events page" }),
        )
}

#[tokio::test]
async fn the_layer_takes_the_receiver_and_leaves_the_rest_alone() {
    let harness = TestApp::new();
    let app = foreign_app().layer(WebhookLayer::new(harness.state.clone()));

    let resp = app
        .clone()
        .oneshot(webhook_request("pull_request", "via-layer", &pr_opened()))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(header(resp.headers(), "x-request-id").is_some());
    assert_eq!(json(resp).await["status"], "accepted");
    let (_, events) = harness.get("/api/v1/webhooks/events").await;
    assert_eq!(events[0]["delivery_id"], "via-layer");

    // A bad signature gets the receiver's 401 and error body.
    let req = webhook_builder("pull_request", "bad")
        .header("x-hub-signature-256", sign(b"x"))
        .body(Body::from(pr_opened()))
        .unwrap();
    assert_error(
        app.clone().oneshot(req).await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "/api/v1/webhooks/github",
    )
    .await;

    // The application's own routes answer as before.
    let resp = app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(body_bytes(resp).await, "the app's own page");
    let resp = app
        .clone()
        .oneshot(
            Request::get("/api/v1/webhooks/events")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(body_bytes(resp).await, "the app's own events page");
    // A GET on the receiver's path is not intercepted: it is the app's own 404.
    let resp = app
        .oneshot(
            Request::get("/api/v1/webhooks/github")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(body_bytes(resp).await.is_empty());
}

#[tokio::test]
async fn the_service_mounts_at_any_path() {
    let harness = TestApp::new();
    let app = foreign_app().route_service("/hooks/github", webhook_service(harness.state.clone()));

    let mut req = webhook_request("pull_request", "via-service", &pr_opened());
    *req.uri_mut() = "/hooks/github".parse().unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, events) = harness.get("/api/v1/webhooks/events").await;
    assert_eq!(events[0]["delivery_id"], "via-service");

    // Duplicate and wrong method keep the spec's codes and bodies.
    let mut req = webhook_request("pull_request", "via-service", &pr_opened());
    *req.uri_mut() = "/hooks/github".parse().unwrap();
    assert_error(
        app.clone().oneshot(req).await.unwrap(),
        StatusCode::CONFLICT,
        "/hooks/github",
    )
    .await;
    let resp = app
        .oneshot(Request::get("/hooks/github").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_error(resp, StatusCode::METHOD_NOT_ALLOWED, "/hooks/github").await;
}
