//! The shared aggregate behind `/api/v1/metrics` and `/api/v1/admin/stats`: answers stay exact
//! (counted after the request arrived), and requests that arrive together share one count.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use chrono::{DateTime, Utc};
use http::{Request, StatusCode};
use orchestrator_axum::{AppState, Metrics, router};
use orchestrator_core::clock::ManualClock;
use orchestrator_core::delivery::DeliveryLimits;
use orchestrator_core::error::StoreError;
use orchestrator_core::memory::MemoryStore;
use orchestrator_core::queue::StoreQueue;
use orchestrator_core::store::*;
use orchestrator_core::task::{Task, TaskDetail};
use tokio::sync::Semaphore;
use tower::ServiceExt;
use uuid::Uuid;

use crate::utils::*;

/// The memory store's task side, counting `stats` calls; the first waits for a permit of `gate`.
struct Counting {
    inner: Arc<MemoryStore>,
    calls: AtomicUsize,
    gate: Semaphore,
}

#[async_trait]
impl TaskStore for Counting {
    async fn list_tasks(&self, f: &TaskFilter, p: Page) -> Result<Vec<Task>, StoreError> {
        self.inner.list_tasks(f, p).await
    }
    async fn get_task(&self, id: Uuid) -> Result<Option<TaskDetail>, StoreError> {
        self.inner.get_task(id).await
    }
    async fn retry_task(&self, id: Uuid, now: DateTime<Utc>) -> Result<RetryOutcome, StoreError> {
        self.inner.retry_task(id, now).await
    }
    async fn stats(&self, now: DateTime<Utc>) -> Result<Stats, StoreError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            let _permit = self.gate.acquire().await;
        }
        self.inner.stats(now).await
    }
    async fn cleanup(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
    ) -> Result<CleanupReport, StoreError> {
        self.inner.cleanup(policy, now).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

async fn metrics_total(router: &Router) -> u64 {
    let req = authed(Request::get("/api/v1/metrics"))
        .body(Body::empty())
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    json(resp).await["webhook_events_total"].as_u64().unwrap()
}

#[tokio::test]
async fn concurrent_figures_requests_share_one_count_and_stay_exact() {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::default());
    let metrics = Arc::new(Metrics::new().unwrap());
    let ingest = ingestor(
        store.clone(),
        clock.clone(),
        metrics,
        DeliveryLimits::default(),
    );
    let tasks = Arc::new(Counting {
        inner: store.clone(),
        calls: AtomicUsize::new(0),
        gate: Semaphore::new(0),
    });
    let state = AppState::builder(
        ingest,
        store.clone(),
        tasks.clone(),
        Arc::new(StoreQueue::new(store.clone())),
        clock,
    )
    .config(config())
    .build();
    let app = router(state);

    // Ten requests at once while the first count is held back: they wait for it (or for the
    // one count that starts after they arrived), they do not each count.
    let requests: Vec<_> = (0..10)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { metrics_total(&app).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    tasks.gate.add_permits(1);
    for r in requests {
        assert_eq!(r.await.unwrap(), 0);
    }
    let calls = tasks.calls.load(Ordering::SeqCst);
    assert!((1..=2).contains(&calls), "{calls} counts for 10 requests");

    // A request after a delivery sees it: no stale snapshot, even on a frozen clock.
    let delivered = webhook_request("ping", "figures-1", &payload("ping/payload.json"));
    let resp = app.clone().oneshot(delivered).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(metrics_total(&app).await, 1);
    assert_eq!(tasks.calls.load(Ordering::SeqCst), calls + 1);
}
