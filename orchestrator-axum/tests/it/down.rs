//! A backend that is down: 503 from the receiver and the API, `unhealthy` from `/health`.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use chrono::{DateTime, Utc};
use http::{Request, StatusCode};
use orchestrator_axum::{AppState, router};
use orchestrator_core::clock::ManualClock;
use orchestrator_core::engine::Ingestor;
use orchestrator_core::error::{StoreError, StoreErrorKind};
use orchestrator_core::event::{EventSummary, WebhookEvent};
use orchestrator_core::queue::StoreQueue;
use orchestrator_core::routing::Router as Rules;
use orchestrator_core::signature::{SignatureVerifier, WebhookSecret};
use orchestrator_core::store::*;
use orchestrator_core::task::{NewTask, Task, TaskDetail};
use tower::ServiceExt;
use uuid::Uuid;

use crate::utils::*;

/// Every call fails with `kind`.
struct DownStore(StoreErrorKind);

impl DownStore {
    fn err<T>(&self) -> Result<T, StoreError> {
        Err(StoreError::new(
            self.0,
            "connection refused (secret detail)",
        ))
    }
}

#[async_trait]
impl EventStore for DownStore {
    async fn ingest_delivery(&self, _: NewDelivery) -> Result<IngestOutcome, StoreError> {
        self.err()
    }
    async fn list_events(&self, _: &EventFilter, _: Page) -> Result<Vec<EventSummary>, StoreError> {
        self.err()
    }
    async fn get_event(&self, _: i64) -> Result<Option<WebhookEvent>, StoreError> {
        self.err()
    }
    async fn reprocess_event(
        &self,
        _: i64,
        _: Vec<NewTask>,
        _: DateTime<Utc>,
    ) -> Result<ReprocessOutcome, StoreError> {
        self.err()
    }
}

#[async_trait]
impl TaskStore for DownStore {
    async fn list_tasks(&self, _: &TaskFilter, _: Page) -> Result<Vec<Task>, StoreError> {
        self.err()
    }
    async fn get_task(&self, _: Uuid) -> Result<Option<TaskDetail>, StoreError> {
        self.err()
    }
    async fn retry_task(&self, _: Uuid, _: DateTime<Utc>) -> Result<RetryOutcome, StoreError> {
        self.err()
    }
    async fn stats(&self, _: DateTime<Utc>) -> Result<Stats, StoreError> {
        self.err()
    }
    async fn cleanup(
        &self,
        _: &RetentionPolicy,
        _: DateTime<Utc>,
    ) -> Result<CleanupReport, StoreError> {
        self.err()
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.err()
    }
}

#[async_trait]
impl AttemptStore for DownStore {
    async fn record_external_run(
        &self,
        _: Uuid,
        _: &ExternalRun,
        _: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.err()
    }
    async fn start_attempt(
        &self,
        _: Uuid,
        _: &str,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> Result<Option<Claim>, StoreError> {
        self.err()
    }
    async fn finish_attempt(
        &self,
        _: &Claim,
        _: Finish,
        _: DateTime<Utc>,
    ) -> Result<FinishReport, StoreError> {
        self.err()
    }
    async fn extend_lease(&self, _: &Claim, _: DateTime<Utc>) -> Result<bool, StoreError> {
        self.err()
    }
    async fn expire_leases(&self, _: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError> {
        self.err()
    }
    async fn stale_runnable(
        &self,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
        _: u32,
    ) -> Result<Vec<Uuid>, StoreError> {
        self.err()
    }
    async fn claim_due(
        &self,
        _: &str,
        _: usize,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> Result<Vec<Claim>, StoreError> {
        self.err()
    }
    async fn queue_depth(&self, _: DateTime<Utc>) -> Result<QueueDepth, StoreError> {
        self.err()
    }
    fn queue_name(&self) -> &'static str {
        "down"
    }
}

fn down_router(kind: StoreErrorKind) -> axum::Router {
    let store = Arc::new(DownStore(kind));
    let clock = Arc::new(ManualClock::default());
    let verifier = SignatureVerifier::new([WebhookSecret::new(SECRET)]);
    let ingestor = Arc::new(Ingestor::new(
        verifier,
        Rules::with_default_rules(),
        store.clone(),
        Arc::new(StoreQueue::new(store.clone())),
        clock.clone(),
    ));
    router(
        AppState::builder_for(ingestor, store, clock)
            .config(config())
            .build(),
    )
}

#[tokio::test]
async fn a_delivery_the_store_cannot_commit_is_503_never_2xx() {
    for kind in [
        StoreErrorKind::Unavailable,
        StoreErrorKind::Internal,
        StoreErrorKind::Conflict,
    ] {
        let app = down_router(kind);
        let resp = app
            .oneshot(webhook_request("pull_request", "d-1", &pr_opened()))
            .await
            .unwrap();
        let body = assert_error(
            resp,
            StatusCode::SERVICE_UNAVAILABLE,
            "/api/v1/webhooks/github",
        )
        .await;
        assert!(
            !body["error"].as_str().unwrap().contains("secret detail"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn api_reads_answer_503_when_unavailable_and_a_generic_500_otherwise() {
    for (kind, status) in [
        (StoreErrorKind::Unavailable, StatusCode::SERVICE_UNAVAILABLE),
        (StoreErrorKind::Internal, StatusCode::INTERNAL_SERVER_ERROR),
    ] {
        for path in [
            "/api/v1/webhooks/events",
            "/api/v1/tasks",
            "/api/v1/metrics",
            "/api/v1/admin/stats",
        ] {
            let req = authed(Request::get(path)).body(Body::empty()).unwrap();
            let resp = down_router(kind).oneshot(req).await.unwrap();
            let body = assert_error(resp, status, path).await;
            assert!(
                !body["error"].as_str().unwrap().contains("secret detail"),
                "{body}"
            );
        }
    }
}

#[tokio::test]
async fn writes_answer_503_and_scrapes_still_work() {
    let id = Uuid::new_v4();
    for path in [
        "/api/v1/webhooks/events/1/reprocess".to_owned(),
        format!("/api/v1/tasks/{id}/retry"),
        "/api/v1/admin/cleanup".to_owned(),
    ] {
        let req = authed(Request::post(&path)).body(Body::empty()).unwrap();
        let resp = down_router(StoreErrorKind::Unavailable)
            .oneshot(req)
            .await
            .unwrap();
        assert_error(resp, StatusCode::SERVICE_UNAVAILABLE, &path).await;
    }
    // A scrape is never refused because the queue cannot be measured.
    let req = Request::get("/metrics").body(Body::empty()).unwrap();
    let resp = down_router(StoreErrorKind::Unavailable)
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn health_is_503_unhealthy_when_the_database_is_down() {
    let resp = down_router(StoreErrorKind::Unavailable)
        .oneshot(Request::get("/health").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = json(resp).await;
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["checks"]["database"], "unhealthy");
    assert_eq!(body["checks"]["celery"], "unhealthy");
    // It says why, without the failure's own words (they may name hosts; they go to the log).
    let why = body["reasons"]["database"].as_str().unwrap();
    assert!(why.contains("database unreachable"), "{why}");
    assert!(body["reasons"]["celery"].is_string(), "{body}");
    assert!(!body.to_string().contains("secret detail"), "{body}");
}
