//! The body budget through the router: uploads past it get 503 with `Retry-After` and the
//! error body, are counted, and the budget comes back when the uploads end.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures::{StreamExt, stream};
use http::StatusCode;
use orchestrator_axum::ApiConfig;

use crate::connections::metric_value;
use crate::utils::*;

#[tokio::test]
async fn uploads_past_the_budget_are_refused_with_503_until_it_comes_back() {
    let app = TestApp::with_config(ApiConfig {
        max_buffered_body_bytes: 20 * 1024,
        ..config()
    });
    // An upload of unknown length that stalls after its first chunk holds 16 KiB.
    let first = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"{\"zen\":"))]);
    let stalled = webhook_builder("ping", "stalled")
        .header("x-hub-signature-256", sign(b"{}"))
        .body(Body::from_stream(first.chain(stream::pending())))
        .unwrap();
    let holder = {
        let router = app.router.clone();
        tokio::spawn(async move { tower::ServiceExt::oneshot(router, stalled).await })
    };
    let state = app.state.clone();
    tokio::time::timeout(Duration::from_secs(10), async {
        while state.body_budget().in_use() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the stalled upload never reserved its bytes");

    // 8 KiB more do not fit.
    let body = pr_opened()[..8 * 1024].to_vec();
    let resp = app.deliver("pull_request", "refused", &body).await;
    assert_eq!(header(resp.headers(), "retry-after").as_deref(), Some("1"));
    assert_error(
        resp,
        StatusCode::SERVICE_UNAVAILABLE,
        "/api/v1/webhooks/github",
    )
    .await;
    let metrics = app.metrics.render();
    assert_eq!(
        metric_value(&metrics, r#"webhook_errors_total{reason="body_budget"}"#),
        1.0
    );
    let (_, events) = app.get("/api/v1/webhooks/events").await;
    assert_eq!(events, serde_json::json!([]), "nothing stored");

    // The stalled upload ends (its client goes away): the budget is whole again.
    holder.abort();
    let _ = holder.await;
    assert_eq!(app.state.body_budget().in_use(), 0);
    let resp = app
        .deliver("ping", "accepted", &payload("ping/payload.json"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(app.state.body_budget().in_use(), 0, "held after the answer");
}
