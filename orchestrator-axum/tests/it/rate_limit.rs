//! Rate limits: 429 with `Retry-After` and the error body; per client; exemptions; 0 = off.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::Response;
use http::{Request, StatusCode};
use orchestrator_axum::{ApiConfig, RateLimit, RateLimits};
use uuid::Uuid;

use crate::utils::*;

fn limited(webhook: RateLimit, api: RateLimit) -> TestApp {
    TestApp::with_config(config().with_rate_limits(RateLimits { webhook, api }))
}

fn from(mut req: Request<Body>, addr: &str) -> Request<Body> {
    let addr: SocketAddr = addr.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

async fn assert_429(resp: Response, path: &str) {
    let retry_after: u64 = header(resp.headers(), "retry-after")
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_error(resp, StatusCode::TOO_MANY_REQUESTS, path).await;
}

#[tokio::test]
async fn webhooks_over_the_burst_are_429_per_client() {
    let app = limited(RateLimit::per_minute(1, 2), RateLimit::OFF);
    let path = "/api/v1/webhooks/github";
    let send = |addr: &'static str| {
        let req = from(
            webhook_request("pull_request", &Uuid::new_v4().to_string(), &pr_opened()),
            addr,
        );
        app.send(req)
    };
    assert_eq!(send("10.0.0.1:1000").await.status(), StatusCode::OK);
    assert_eq!(send("10.0.0.1:1001").await.status(), StatusCode::OK);
    assert_429(send("10.0.0.1:1002").await, path).await;
    // Another client still has its burst.
    assert_eq!(send("10.0.0.2:1000").await.status(), StatusCode::OK);
    // The limited request was not stored.
    let (_, events) = app.get("/api/v1/webhooks/events").await;
    assert_eq!(events.as_array().unwrap().len(), 3);
    assert!(
        app.metrics
            .render()
            .contains(r#"webhook_errors_total{reason="rate_limited"} 1"#)
    );
}

#[tokio::test]
async fn the_api_limit_applies_and_health_and_metrics_are_exempt() {
    let app = limited(RateLimit::OFF, RateLimit::per_minute(1, 1));
    let get = |path: &'static str| {
        app.send(from(
            authed(Request::get(path)).body(Body::empty()).unwrap(),
            "10.0.0.9:1",
        ))
    };
    assert_eq!(get("/api/v1/tasks").await.status(), StatusCode::OK);
    assert_429(get("/api/v1/tasks").await, "/api/v1/tasks").await;
    assert_429(get("/api/v1/admin/stats").await, "/api/v1/admin/stats").await;
    for _ in 0..10 {
        assert_eq!(get("/health").await.status(), StatusCode::OK);
        assert_eq!(get("/metrics").await.status(), StatusCode::OK);
    }
    // The webhook limit is off: the receiver is unaffected by the API's.
    for _ in 0..5 {
        let req = from(
            webhook_request(
                "ping",
                &Uuid::new_v4().to_string(),
                &payload("ping/payload.json"),
            ),
            "10.0.0.9:1",
        );
        assert_eq!(app.send(req).await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn a_trusted_proxy_header_keys_the_limit_when_configured() {
    let config = ApiConfig {
        trusted_proxy_header: Some(http::HeaderName::from_static("x-forwarded-for")),
        ..config().with_rate_limits(RateLimits {
            webhook: RateLimit::OFF,
            api: RateLimit::per_minute(1, 1),
        })
    };
    let app = TestApp::with_config(config);
    let get = |client: &'static str| {
        let req = authed(Request::get("/api/v1/tasks"))
            .header("x-forwarded-for", client)
            .body(Body::empty())
            .unwrap();
        app.send(from(req, "192.168.0.1:80"))
    };
    // Same proxy peer, different forwarded clients: separate buckets.
    assert_eq!(get("1.1.1.1").await.status(), StatusCode::OK);
    assert_eq!(get("2.2.2.2").await.status(), StatusCode::OK);
    assert_eq!(get("1.1.1.1").await.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_default_limits_are_the_specs() {
    let limits = RateLimits::default();
    assert_eq!(limits.webhook, RateLimit::per_second(10, 20));
    assert_eq!(limits.api, RateLimit::per_minute(100, 50));
    // With the default webhook limit, a burst of 20 passes, and sending faster than 10 per
    // second soon meets a 429 (the loop allows for tokens replenished while it runs).
    let app = TestApp::with_config(config().with_rate_limits(RateLimits::default()));
    let mut statuses = Vec::new();
    for _ in 0..50 {
        let req = from(
            webhook_request(
                "ping",
                &Uuid::new_v4().to_string(),
                &payload("ping/payload.json"),
            ),
            "10.1.1.1:1",
        );
        let status = app.send(req).await.status();
        statuses.push(status);
        if status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
    }
    assert!(
        statuses[..20].iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}
