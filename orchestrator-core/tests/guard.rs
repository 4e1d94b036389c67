//! The ingestor with a delivery guard in front of the store: redeliveries known to the guard are
//! answered without a store transaction, unauthenticated input never marks an id, and neither a
//! failing store nor a failing guard ever makes a delivery be refused later.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue};
use orchestrator_core::clock::ManualClock;
use orchestrator_core::engine::{IngestError, Ingestor};
use orchestrator_core::error::{StoreError, StoreErrorKind};
use orchestrator_core::event::{EventSummary, WebhookEvent};
use orchestrator_core::guard::{DeliveryGuard, IN_FLIGHT_TTL, MemoryDeliveryGuard, Sighting};
use orchestrator_core::memory::MemoryStore;
use orchestrator_core::payload::ParsedEvent;
use orchestrator_core::queue::StoreQueue;
use orchestrator_core::routing::{Router, Rule};
use orchestrator_core::signature::{SignatureVerifier, WebhookSecret};
use orchestrator_core::store::{
    EventFilter, EventStore, IngestOutcome, NewDelivery, Page, ReprocessOutcome, TaskFilter,
    TaskStore,
};
use orchestrator_core::task::{NewTask, TaskSpec, TaskType};

const SECRET: &str = "It's a Secret to Everybody";
const ISSUE: &[u8] = br#"{"action":"opened","repository":{"full_name":"octo/repo"}}"#;

/// One `analyze` task per `issues` delivery.
struct OneTask;

impl Rule for OneTask {
    fn name(&self) -> &str {
        "one_task"
    }
    fn route(&self, event: &ParsedEvent) -> Vec<TaskSpec> {
        if event.name != "issues" {
            return Vec::new();
        }
        vec![TaskSpec::new(TaskType::new("analyze").unwrap())]
    }
}

/// The in-memory store, counting `ingest` calls and failing them on demand.
struct CountingStore {
    inner: Arc<MemoryStore>,
    ingests: AtomicUsize,
    fail: AtomicBool,
}

#[async_trait]
impl EventStore for CountingStore {
    async fn ingest_delivery(&self, delivery: NewDelivery) -> Result<IngestOutcome, StoreError> {
        self.ingests.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "database down",
            ));
        }
        self.inner.ingest_delivery(delivery).await
    }
    async fn list_events(
        &self,
        filter: &EventFilter,
        page: Page,
    ) -> Result<Vec<EventSummary>, StoreError> {
        self.inner.list_events(filter, page).await
    }
    async fn get_event(&self, id: i64) -> Result<Option<WebhookEvent>, StoreError> {
        self.inner.get_event(id).await
    }
    async fn reprocess_event(
        &self,
        id: i64,
        tasks: Vec<NewTask>,
        now: DateTime<Utc>,
    ) -> Result<ReprocessOutcome, StoreError> {
        self.inner.reprocess_event(id, tasks, now).await
    }
}

/// A guard whose backend is down: every call fails, and counts.
#[derive(Debug, Default)]
struct DownGuard(AtomicUsize);

#[async_trait]
impl DeliveryGuard for DownGuard {
    async fn first_seen(&self, _: &str) -> Result<Sighting, StoreError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(StoreError::new(StoreErrorKind::Unavailable, "redis down"))
    }
    async fn stored(&self, _: &str, _: i64) -> Result<(), StoreError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(StoreError::new(StoreErrorKind::Unavailable, "redis down"))
    }
    async fn forget(&self, _: &str) -> Result<(), StoreError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(StoreError::new(StoreErrorKind::Unavailable, "redis down"))
    }
}

struct Harness {
    clock: Arc<ManualClock>,
    memory: Arc<MemoryStore>,
    store: Arc<CountingStore>,
}

impl Harness {
    fn new() -> Self {
        let memory = Arc::new(MemoryStore::new());
        Self {
            clock: Arc::new(ManualClock::default()),
            store: Arc::new(CountingStore {
                inner: memory.clone(),
                ingests: AtomicUsize::new(0),
                fail: AtomicBool::new(false),
            }),
            memory,
        }
    }

    fn memory_guard(&self) -> Arc<MemoryDeliveryGuard> {
        Arc::new(MemoryDeliveryGuard::new(self.clock.clone()))
    }

    /// An API instance: its own ingestor over the shared store, with `guard`.
    fn ingestor(&self, guard: Arc<dyn DeliveryGuard>) -> Ingestor {
        Ingestor::new(
            SignatureVerifier::new([WebhookSecret::new(SECRET)]),
            Router::empty().with_rule(OneTask),
            self.store.clone(),
            Arc::new(StoreQueue::new(self.memory.clone())),
            self.clock.clone(),
        )
        .with_delivery_guard(guard)
    }

    fn ingests(&self) -> usize {
        self.store.ingests.load(Ordering::SeqCst)
    }

    async fn events(&self) -> usize {
        self.memory
            .list_events(&EventFilter::default(), Page::default())
            .await
            .unwrap()
            .len()
    }

    async fn tasks(&self) -> usize {
        self.memory
            .list_tasks(&TaskFilter::default(), Page::default())
            .await
            .unwrap()
            .len()
    }
}

fn headers(delivery: &str, body: &[u8]) -> HeaderMap {
    let signature = SignatureVerifier::new([WebhookSecret::new(SECRET)])
        .sign(body)
        .unwrap();
    let mut map = HeaderMap::new();
    map.insert("x-github-event", HeaderValue::from_static("issues"));
    map.insert(
        "x-github-delivery",
        HeaderValue::from_str(delivery).unwrap(),
    );
    map.insert(
        "x-hub-signature-256",
        HeaderValue::from_str(&signature).unwrap(),
    );
    map.insert("content-type", HeaderValue::from_static("application/json"));
    map
}

async fn deliver(
    ingestor: &Ingestor,
    delivery: &str,
) -> Result<orchestrator_core::engine::Receipt, IngestError> {
    ingestor
        .ingest(&headers(delivery, ISSUE), Bytes::from_static(ISSUE), None)
        .await
}

#[tokio::test]
async fn a_redelivery_known_to_the_guard_is_a_duplicate_without_a_store_call() {
    let h = Harness::new();
    let guard = h.memory_guard();
    // Two API instances sharing one guard and one store.
    let api_a = h.ingestor(guard.clone());
    let api_b = h.ingestor(guard.clone());

    let first = deliver(&api_a, "d-1").await.unwrap();
    assert!(!first.duplicate);
    assert_eq!(first.task_ids.len(), 1);
    assert_eq!(h.ingests(), 1);

    let again = deliver(&api_b, "d-1").await.unwrap();
    assert!(again.duplicate);
    assert_eq!(
        again.event_id, first.event_id,
        "the stored event's id, not a placeholder"
    );
    assert!(again.task_ids.is_empty());
    assert_eq!(again.action.as_deref(), Some("opened"));
    assert_eq!(h.ingests(), 1, "the store was not asked again");
    assert_eq!((h.events().await, h.tasks().await), (1, 1));

    let other = deliver(&api_b, "d-2").await.unwrap();
    assert!(!other.duplicate, "other ids are independent");
    assert_eq!(h.ingests(), 2);
}

#[tokio::test]
async fn unauthenticated_or_unparseable_deliveries_never_touch_the_guard() {
    let h = Harness::new();
    let guard = h.memory_guard();
    let api = h.ingestor(guard.clone());

    let mut forged = headers("d-1", ISSUE);
    forged.insert(
        "x-hub-signature-256",
        HeaderValue::from_static(
            "sha256=0000000000000000000000000000000000000000000000000000000000000000",
        ),
    );
    let err = api
        .ingest(&forged, Bytes::from_static(ISSUE), None)
        .await
        .unwrap_err();
    assert!(matches!(err, IngestError::Signature(_)), "{err:?}");

    let mut unsigned = headers("d-1", ISSUE);
    unsigned.remove("x-hub-signature-256");
    assert!(
        api.ingest(&unsigned, Bytes::from_static(ISSUE), None)
            .await
            .is_err()
    );

    let garbage = b"not json";
    let err = api
        .ingest(&headers("d-1", garbage), Bytes::from_static(garbage), None)
        .await
        .unwrap_err();
    assert!(matches!(err, IngestError::Payload(_)), "{err:?}");

    assert!(guard.is_empty(), "no id was marked");
    assert_eq!(h.ingests(), 0);
    let genuine = deliver(&api, "d-1").await.unwrap();
    assert!(!genuine.duplicate, "GitHub's genuine delivery is accepted");
}

#[tokio::test]
async fn a_store_failure_after_the_guard_releases_the_id_for_the_redelivery() {
    let h = Harness::new();
    let guard = h.memory_guard();
    let api = h.ingestor(guard.clone());

    h.store.fail.store(true, Ordering::SeqCst);
    let err = deliver(&api, "d-1").await.unwrap_err();
    assert!(matches!(err, IngestError::Store(_)), "{err:?}");
    assert!(guard.is_empty(), "the in-flight mark was forgotten");

    // The redelivery comes at once, before the in-flight mark would have expired.
    h.store.fail.store(false, Ordering::SeqCst);
    let redelivery = deliver(&api, "d-1").await.unwrap();
    assert!(!redelivery.duplicate);
    assert_eq!(redelivery.task_ids.len(), 1);
    assert_eq!((h.events().await, h.tasks().await), (1, 1));
}

#[tokio::test]
async fn an_id_in_flight_elsewhere_is_decided_by_the_store() {
    let h = Harness::new();
    let guard = h.memory_guard();
    let api = h.ingestor(guard.clone());

    // Another instance marked the id and then crashed before storing it.
    assert_eq!(guard.first_seen("d-1").await.unwrap(), Sighting::First);
    let receipt = deliver(&api, "d-1").await.unwrap();
    assert!(!receipt.duplicate, "the delivery is stored, not refused");
    assert_eq!(h.ingests(), 1);
    assert_eq!(h.events().await, 1);
    assert_eq!(
        guard.first_seen("d-1").await.unwrap(),
        Sighting::Stored {
            event_id: receipt.event_id
        }
    );

    // An abandoned mark also just expires.
    assert_eq!(guard.first_seen("d-2").await.unwrap(), Sighting::First);
    h.clock.advance(IN_FLIGHT_TTL);
    assert!(!deliver(&api, "d-2").await.unwrap().duplicate);
}

#[tokio::test]
async fn a_guard_that_forgot_learns_from_the_stores_duplicate_answer() {
    let h = Harness::new();
    let first = deliver(&h.ingestor(h.memory_guard()), "d-1").await.unwrap();

    // A fresh guard (e.g. Redis was flushed): the store's constraint still finds the duplicate.
    let guard = h.memory_guard();
    let api = h.ingestor(guard.clone());
    let again = deliver(&api, "d-1").await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.event_id, first.event_id);
    assert_eq!(h.ingests(), 2);
    // ... and the guard now answers the next one alone.
    assert!(deliver(&api, "d-1").await.unwrap().duplicate);
    assert_eq!(h.ingests(), 2);
    assert_eq!((h.events().await, h.tasks().await), (1, 1));
}

#[tokio::test]
async fn a_failing_guard_falls_back_to_the_store() {
    let h = Harness::new();
    let guard = Arc::new(DownGuard::default());
    let api = h.ingestor(guard.clone());

    let first = deliver(&api, "d-1").await.unwrap();
    assert!(!first.duplicate, "accepted although the guard is down");
    assert_eq!(first.task_ids.len(), 1);
    let again = deliver(&api, "d-1").await.unwrap();
    assert!(again.duplicate, "the store still refuses the replay");
    assert_eq!(again.event_id, first.event_id);
    assert_eq!(h.ingests(), 2);
    assert_eq!((h.events().await, h.tasks().await), (1, 1));
    assert!(guard.0.load(Ordering::SeqCst) >= 2, "the guard was asked");
}
