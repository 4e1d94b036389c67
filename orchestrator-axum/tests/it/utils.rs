//! Test harness: an app over a `MemoryStore`, signed requests, corpus access.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use orchestrator_axum::{ApiConfig, AppState, Metrics, RateLimits, router};
use orchestrator_core::clock::{Clock, ManualClock};
use orchestrator_core::delivery::DeliveryLimits;
use orchestrator_core::engine::Ingestor;
use orchestrator_core::memory::MemoryStore;
use orchestrator_core::queue::{StoreQueue, TaskQueue};
use orchestrator_core::routing::Router as Rules;
use orchestrator_core::signature::{SignatureVerifier, WebhookSecret};
use orchestrator_core::store::Finish;
use serde_json::Value;
use sha2::Sha256;
use tower::ServiceExt;
use uuid::Uuid;

pub const SECRET: &str = "It's a Secret to Everybody";
pub const TOKEN: &str = "admin-token-for-tests";

/// An app over a fresh in-memory store and a manual clock.
pub struct TestApp {
    pub state: AppState,
    pub store: Arc<MemoryStore>,
    pub clock: Arc<ManualClock>,
    pub metrics: Arc<Metrics>,
    pub router: Router,
}

/// The default test configuration: a token, no rate limits.
pub fn config() -> ApiConfig {
    ApiConfig::default()
        .with_admin_token(TOKEN)
        .with_rate_limits(RateLimits::OFF)
}

impl TestApp {
    pub fn new() -> Self {
        Self::build(config(), DeliveryLimits::default())
    }

    pub fn with_config(config: ApiConfig) -> Self {
        Self::build(config, DeliveryLimits::default())
    }

    pub fn build(config: ApiConfig, limits: DeliveryLimits) -> Self {
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::default());
        let metrics = Arc::new(Metrics::new().unwrap());
        let state = AppState::builder_for(
            ingestor(store.clone(), clock.clone(), metrics.clone(), limits),
            store.clone(),
            clock.clone(),
        )
        .config(config)
        .submit_store(store.clone())
        .metrics(metrics.clone())
        .build();
        let router = router(state.clone());
        Self {
            state,
            store,
            clock,
            metrics,
            router,
        }
    }

    pub async fn send(&self, req: Request<Body>) -> Response {
        self.router.clone().oneshot(req).await.unwrap()
    }

    /// An authorised GET; status and JSON body.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self
            .send(authed(Request::get(path)).body(Body::empty()).unwrap())
            .await;
        let status = resp.status();
        (status, json(resp).await)
    }

    /// An authorised POST with no body; status and JSON body.
    pub async fn post(&self, path: &str) -> (StatusCode, Value) {
        let resp = self
            .send(authed(Request::post(path)).body(Body::empty()).unwrap())
            .await;
        let status = resp.status();
        (status, json(resp).await)
    }

    /// Posts a signed delivery; the response.
    pub async fn deliver(&self, event: &str, delivery_id: &str, body: &[u8]) -> Response {
        self.send(webhook_request(event, delivery_id, body)).await
    }

    /// Posts a signed delivery that must be accepted; its JSON answer.
    pub async fn accept(&self, event: &str, body: &[u8]) -> Value {
        let resp = self.deliver(event, &Uuid::new_v4().to_string(), body).await;
        assert_eq!(resp.status(), StatusCode::OK);
        json(resp).await
    }

    /// The app clock's time.
    pub fn store_now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Claims every due task and fails it for good; their ids.
    pub async fn fail_all_due(&self) -> Vec<Uuid> {
        let now = self.clock.now();
        let queue = StoreQueue::new(self.store.clone());
        let claims = queue
            .claim("test-worker", 100, Duration::from_secs(60), now)
            .await
            .unwrap();
        let mut ids = Vec::new();
        for claim in claims {
            ids.push(claim.task.task_id);
            queue
                .finish(
                    &claim,
                    Finish::Failed {
                        error: "boom".into(),
                    },
                    now,
                )
                .await
                .unwrap();
        }
        ids
    }
}

pub fn ingestor(
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    metrics: Arc<Metrics>,
    limits: DeliveryLimits,
) -> Arc<Ingestor> {
    let verifier = SignatureVerifier::new([WebhookSecret::new(SECRET)]);
    Arc::new(
        Ingestor::new(
            verifier,
            Rules::with_default_rules(),
            store.clone(),
            Arc::new(StoreQueue::new(store)),
            clock,
        )
        .with_limits(limits)
        .with_observer(metrics),
    )
}

pub fn authed(builder: http::request::Builder) -> http::request::Builder {
    builder.header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
}

pub fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A signed delivery as GitHub sends it.
pub fn webhook_request(event: &str, delivery_id: &str, body: &[u8]) -> Request<Body> {
    webhook_builder(event, delivery_id)
        .header("x-hub-signature-256", sign(body))
        .body(Body::from(Bytes::copy_from_slice(body)))
        .unwrap()
}

/// The envelope headers of a delivery, without a signature.
pub fn webhook_builder(event: &str, delivery_id: &str) -> http::request::Builder {
    Request::post("/api/v1/webhooks/github")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery_id)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "GitHub-Hookshot/test")
}

pub async fn body_bytes(resp: Response) -> Bytes {
    resp.into_body().collect().await.unwrap().to_bytes()
}

pub async fn json(resp: Response) -> Value {
    let bytes = body_bytes(resp).await;
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

/// Asserts the spec's error body and returns it.
pub async fn assert_error(resp: Response, status: StatusCode, path: &str) -> Value {
    assert_eq!(resp.status(), status);
    let header_id = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = json(resp).await;
    assert_error_body(&body, status, path);
    assert_eq!(
        body["correlation_id"].as_str(),
        header_id.as_deref(),
        "{body}"
    );
    body
}

pub fn assert_error_body(body: &Value, status: StatusCode, path: &str) {
    let obj = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {body}"));
    assert_eq!(obj.len(), 4, "{body}");
    assert!(
        obj["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert_eq!(obj["status_code"], status.as_u16(), "{body}");
    assert_eq!(obj["path"], path, "{body}");
    assert!(
        obj["correlation_id"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{body}"
    );
}

pub fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(|v| v.to_str().unwrap().to_owned())
}

pub fn corpus_dir() -> PathBuf {
    std::env::var_os("WEBHOOK_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"))
        })
}

/// Every corpus payload: (event, file name, bytes).
pub fn corpus() -> Vec<(String, String, Vec<u8>)> {
    let dir = corpus_dir().join("github-payloads");
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap_or_else(|e| {
        panic!(
            "corpus manifest not readable in {} ({e}); set WEBHOOK_CORPUS_DIR",
            dir.display()
        )
    });
    manifest
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut cols = line.split('\t');
            let file = cols.next().unwrap().to_owned();
            let event = cols.next().unwrap().to_owned();
            let bytes = std::fs::read(dir.join(&file)).unwrap();
            (event, file, bytes)
        })
        .collect()
}

/// One corpus payload by file name.
pub fn payload(file: &str) -> Vec<u8> {
    std::fs::read(corpus_dir().join("github-payloads").join(file)).unwrap()
}

/// A pull_request opened payload (routed to one task).
pub fn pr_opened() -> Vec<u8> {
    payload("pull_request/opened.payload.json")
}
