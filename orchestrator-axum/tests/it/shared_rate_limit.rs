//! A shared rate limiter (as several API instances use, e.g. Redis) instead of the in-process
//! one: same keys and quotas, same 429; when it fails, the in-process limiter takes over.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::Response;
use http::{Request, StatusCode};
use orchestrator_axum::{ApiConfig, AppState, Metrics, RateLimit, RateLimits, router};
use orchestrator_core::clock::ManualClock;
use orchestrator_core::delivery::DeliveryLimits;
use orchestrator_core::error::{StoreError, StoreErrorKind};
use orchestrator_core::guard::{RateDecision, RateLimiter, RateQuota};
use orchestrator_core::memory::MemoryStore;
use tower::ServiceExt;
use uuid::Uuid;

use crate::utils::*;

/// Allows `allow` requests per key, then answers "wait 7 s"; records every question; can be
/// switched off like a Redis outage.
#[derive(Debug)]
struct FakeShared {
    allow: usize,
    down: AtomicBool,
    asked: Mutex<Vec<(String, RateQuota)>>,
}

impl FakeShared {
    fn new(allow: usize) -> Arc<Self> {
        Arc::new(Self {
            allow,
            down: AtomicBool::new(false),
            asked: Mutex::new(Vec::new()),
        })
    }

    fn asked(&self) -> Vec<(String, RateQuota)> {
        self.asked.lock().unwrap().clone()
    }
}

#[async_trait]
impl RateLimiter for FakeShared {
    async fn check(&self, key: &str, quota: RateQuota) -> Result<RateDecision, StoreError> {
        let mut asked = self.asked.lock().unwrap();
        asked.push((key.to_owned(), quota));
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::new(StoreErrorKind::Unavailable, "redis down"));
        }
        let seen = asked.iter().filter(|(k, _)| k == key).count();
        Ok(if seen <= self.allow {
            RateDecision::Allowed
        } else {
            RateDecision::Limited {
                retry_after: Duration::from_secs(7),
            }
        })
    }
}

struct App {
    router: Router,
    metrics: Arc<Metrics>,
}

fn app(limits: RateLimits, shared: Arc<FakeShared>) -> App {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::default());
    let metrics = Arc::new(Metrics::new().unwrap());
    let state = AppState::builder_for(
        ingestor(
            store.clone(),
            clock.clone(),
            metrics.clone(),
            DeliveryLimits::default(),
        ),
        store,
        clock,
    )
    .config(ApiConfig {
        trusted_proxy_header: None,
        ..config().with_rate_limits(limits)
    })
    .metrics(metrics.clone())
    .shared_rate_limiter(shared)
    .build();
    App {
        router: router(state),
        metrics,
    }
}

impl App {
    async fn send(&self, mut req: Request<Body>, addr: &str) -> Response {
        let addr: SocketAddr = addr.parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
        self.router.clone().oneshot(req).await.unwrap()
    }

    async fn webhook(&self, addr: &str) -> Response {
        let req = webhook_request(
            "ping",
            &Uuid::new_v4().to_string(),
            &payload("ping/payload.json"),
        );
        self.send(req, addr).await
    }

    async fn api(&self, addr: &str) -> Response {
        let req = authed(Request::get("/api/v1/tasks"))
            .body(Body::empty())
            .unwrap();
        self.send(req, addr).await
    }
}

const PATH: &str = "/api/v1/webhooks/github";

#[tokio::test]
async fn the_shared_limiter_decides_with_the_configured_quota_per_client() {
    // The in-process limit alone would allow 50 at once; the shared budget is what counts.
    let webhook = RateLimit::per_second(10, 50);
    let shared = FakeShared::new(2);
    let app = app(
        RateLimits {
            webhook,
            api: RateLimit::OFF,
        },
        shared.clone(),
    );

    assert_eq!(app.webhook("10.0.0.1:1").await.status(), StatusCode::OK);
    assert_eq!(app.webhook("10.0.0.1:2").await.status(), StatusCode::OK);
    let refused = app.webhook("10.0.0.1:3").await;
    assert_eq!(
        header(refused.headers(), "retry-after").as_deref(),
        Some("7")
    );
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, PATH).await;
    assert_eq!(
        app.webhook("10.0.0.2:1").await.status(),
        StatusCode::OK,
        "another client has its own budget"
    );
    assert!(
        app.metrics
            .render()
            .contains(r#"webhook_errors_total{reason="rate_limited"} 1"#)
    );

    let asked = shared.asked();
    let keys: Vec<&str> = asked.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "webhook:10.0.0.1",
            "webhook:10.0.0.1",
            "webhook:10.0.0.1",
            "webhook:10.0.0.2"
        ]
    );
    assert!(
        asked.iter().all(|(_, q)| *q
            == RateQuota {
                requests: 10,
                period: Duration::from_secs(1),
                burst: 50
            }),
        "{asked:?}"
    );
}

#[tokio::test]
async fn the_api_limit_has_its_own_key_space_and_an_off_limit_never_asks() {
    let shared = FakeShared::new(1);
    let app = app(
        RateLimits {
            webhook: RateLimit::OFF,
            api: RateLimit::per_minute(100, 50),
        },
        shared.clone(),
    );
    assert_eq!(app.api("10.0.0.9:1").await.status(), StatusCode::OK);
    let refused = app.api("10.0.0.9:1").await;
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "/api/v1/tasks").await;
    for _ in 0..3 {
        assert_eq!(app.webhook("10.0.0.9:1").await.status(), StatusCode::OK);
    }
    let asked = shared.asked();
    assert_eq!(asked.len(), 2, "the webhook limit is off: {asked:?}");
    assert!(asked.iter().all(|(k, q)| k == "api:10.0.0.9"
        && *q
            == RateQuota {
                requests: 100,
                period: Duration::from_secs(60),
                burst: 50
            }));
}

#[tokio::test]
async fn a_failing_shared_limiter_falls_back_to_the_in_process_limit() {
    let shared = FakeShared::new(usize::MAX);
    shared.down.store(true, Ordering::SeqCst);
    let app = app(
        RateLimits {
            webhook: RateLimit::per_minute(1, 2),
            api: RateLimit::OFF,
        },
        shared.clone(),
    );

    // Never a 500, and never unlimited: the in-process buckets allow the burst of 2.
    assert_eq!(app.webhook("10.0.0.1:1").await.status(), StatusCode::OK);
    assert_eq!(app.webhook("10.0.0.1:1").await.status(), StatusCode::OK);
    let refused = app.webhook("10.0.0.1:1").await;
    let retry_after: u64 = header(refused.headers(), "retry-after")
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, PATH).await;
    assert_eq!(
        shared.asked().len(),
        3,
        "the shared limiter was asked first"
    );

    // Once it answers again, it decides again (its budget here is unlimited).
    shared.down.store(false, Ordering::SeqCst);
    for _ in 0..5 {
        assert_eq!(app.webhook("10.0.0.1:1").await.status(), StatusCode::OK);
    }
}
