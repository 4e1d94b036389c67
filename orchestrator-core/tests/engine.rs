//! The engine over the in-memory store: ingest (verify, parse, route, store atomically) and the
//! worker (claim, run, retry, defer, lease expiry, follow-ups, shutdown, exactly-once).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use orchestrator_core::breaker::{BreakerConfig, CircuitBreaker};
use orchestrator_core::clock::{self, Clock, ManualClock};
use orchestrator_core::delivery::{DeliveryError, DeliveryLimits};
use orchestrator_core::engine::{IngestError, Ingestor, ReprocessOptions, Worker, WorkerConfig};
use orchestrator_core::error::{StoreError, StoreErrorKind, TaskError};
use orchestrator_core::handler::{HandlerOutcome, HandlerRegistry, TaskContext, TaskHandler};
use orchestrator_core::memory::MemoryStore;
use orchestrator_core::observe::{DeliveryOutcome, Observer};
use orchestrator_core::payload::{ParsedEvent, PayloadError};
use orchestrator_core::queue::{StoreQueue, TaskQueue, TaskRef};
use orchestrator_core::retry::{Backoff, RetryPolicy};
use orchestrator_core::routing::{Router, Rule};
use orchestrator_core::signature::{SignatureError, SignatureVerifier, WebhookSecret};
use orchestrator_core::store::{
    Claim, EventFilter, EventStore, ExternalRun, Finish, FinishReport, Page, QueueDepth,
    ReprocessOutcome, RetryOutcome, TaskFilter, TaskStore,
};
use orchestrator_core::task::{ExecutionStatus, TaskDetail, TaskSpec, TaskStatus, TaskType};
use serde_json::{Value, json};
use uuid::Uuid;

const SECRET: &str = "It's a Secret to Everybody";

fn analyze() -> TaskType {
    TaskType::new("analyze").unwrap()
}

/// Routes every `issues` delivery to two `analyze` tasks (one per label below), so these tests
/// do not depend on the built-in rules.
struct TestRule;

impl Rule for TestRule {
    fn name(&self) -> &str {
        "test_issues"
    }
    fn route(&self, event: &ParsedEvent) -> Vec<TaskSpec> {
        if event.name != "issues" {
            return Vec::new();
        }
        ["first", "second"]
            .into_iter()
            .map(|label| {
                let mut spec = TaskSpec::new(analyze());
                spec.repository = event.repository.as_ref().map(|r| r.full_name.clone());
                spec.pr_number = Some(7);
                spec.input_data = json!({ "label": label });
                spec
            })
            .collect()
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Recorder {
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn count(&self, prefix: &str) -> usize {
        self.lines()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }
}

impl Observer for Recorder {
    fn delivery(
        &self,
        event_type: &str,
        outcome: DeliveryOutcome,
        reason: Option<&str>,
        _: Duration,
    ) {
        self.0.lock().unwrap().push(format!(
            "delivery {event_type} {} {}",
            outcome.as_str(),
            reason.unwrap_or("-")
        ));
    }
    fn tasks_created(&self, task_type: &TaskType, count: u64) {
        self.0
            .lock()
            .unwrap()
            .push(format!("created {task_type} {count}"));
    }
    fn task_attempt(&self, task_type: &TaskType, status: TaskStatus, _: Duration) {
        self.0
            .lock()
            .unwrap()
            .push(format!("attempt {task_type} {status}"));
    }
    fn task_retry(&self, task_type: &TaskType) {
        self.0.lock().unwrap().push(format!("retry {task_type}"));
    }
}

struct Harness {
    clock: Arc<ManualClock>,
    store: Arc<MemoryStore>,
    /// The database queue over `store`.
    queue: Arc<StoreQueue<MemoryStore>>,
    observer: Arc<Recorder>,
    ingestor: Ingestor,
}

fn no_jitter_policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        backoff: Backoff {
            base: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(300),
            jitter: 0.0,
        },
        max_retry_after: Duration::from_secs(3600),
    }
}

fn harness() -> Harness {
    let clock = Arc::new(ManualClock::default());
    let store = Arc::new(MemoryStore::new());
    let queue = Arc::new(StoreQueue::new(store.clone()));
    let observer = Arc::new(Recorder::default());
    let mut router = Router::empty();
    router.add(TestRule);
    let ingestor = Ingestor::new(
        SignatureVerifier::new([WebhookSecret::new(SECRET)]),
        router,
        store.clone(),
        queue.clone(),
        clock.clone(),
    )
    .with_retry_policy(no_jitter_policy())
    .with_limits(DeliveryLimits {
        max_body_bytes: 4096,
    })
    .with_observer(observer.clone());
    Harness {
        clock,
        store,
        queue,
        observer,
        ingestor,
    }
}

fn sign(body: &[u8]) -> String {
    SignatureVerifier::new([WebhookSecret::new(SECRET)])
        .sign(body)
        .unwrap()
}

fn headers(event: &str, delivery: &str, body: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert("x-github-event", HeaderValue::from_str(event).unwrap());
    map.insert(
        "x-github-delivery",
        HeaderValue::from_str(delivery).unwrap(),
    );
    map.insert(
        "x-hub-signature-256",
        HeaderValue::from_str(&sign(body)).unwrap(),
    );
    map.insert("content-type", HeaderValue::from_static("application/json"));
    map.insert(
        "user-agent",
        HeaderValue::from_static("GitHub-Hookshot/abc"),
    );
    map.insert(
        "authorization",
        HeaderValue::from_static("Bearer not-stored"),
    );
    map
}

const ISSUE: &[u8] =
    br#"{"action":"opened","repository":{"full_name":"octo/repo"},"installation":{"id":99}}"#;

impl Harness {
    async fn deliver(&self, delivery: &str) -> Vec<Uuid> {
        let receipt = self
            .ingestor
            .ingest(
                &headers("issues", delivery, ISSUE),
                Bytes::from_static(ISSUE),
                None,
            )
            .await
            .unwrap();
        receipt.task_ids
    }

    fn worker(&self, registry: HandlerRegistry) -> Worker {
        Worker::new(
            self.queue.clone(),
            self.store.clone(),
            registry,
            self.clock.clone(),
            config("w1"),
        )
        .with_retry_policy(no_jitter_policy())
        .with_observer(self.observer.clone())
    }

    async fn task(&self, id: Uuid) -> TaskDetail {
        self.store.get_task(id).await.unwrap().unwrap()
    }

    async fn nothing_stored(&self) {
        assert!(
            self.store
                .list_events(&EventFilter::default(), Page::default())
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            self.store
                .list_tasks(&TaskFilter::default(), Page::default())
                .await
                .unwrap()
                .is_empty()
        );
    }
}

fn config(id: &str) -> WorkerConfig {
    WorkerConfig {
        worker_id: id.to_owned(),
        concurrency: 4,
        lease: Duration::from_secs(60),
        poll_interval: Duration::from_millis(5),
        shutdown_grace: Duration::from_millis(200),
    }
}

/// A handler from a closure over the context and the call number (1-based).
struct FnHandler<F> {
    calls: AtomicUsize,
    f: F,
}

#[async_trait]
impl<F> TaskHandler for FnHandler<F>
where
    F: Fn(&TaskContext, usize) -> Result<HandlerOutcome, TaskError> + Send + Sync + 'static,
{
    async fn handle(&self, ctx: &TaskContext) -> Result<HandlerOutcome, TaskError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        (self.f)(ctx, n)
    }
}

fn registry<F>(f: F) -> HandlerRegistry
where
    F: Fn(&TaskContext, usize) -> Result<HandlerOutcome, TaskError> + Send + Sync + 'static,
{
    let mut registry = HandlerRegistry::new();
    registry.register(
        analyze(),
        FnHandler {
            calls: AtomicUsize::new(0),
            f,
        },
    );
    registry
}

// ---------------------------------------------------------------------------------------------
// Ingest
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_accepted_delivery_stores_event_and_tasks_in_one_go() {
    let h = harness();
    let body = Bytes::from_static(ISSUE);
    let receipt = h
        .ingestor
        .ingest(
            &headers("issues", "d-1", ISSUE),
            body,
            Some("00-abc-def-01".into()),
        )
        .await
        .unwrap();
    assert!(!receipt.duplicate);
    assert_eq!(
        (receipt.event_type.as_str(), receipt.action.as_deref()),
        ("issues", Some("opened"))
    );
    assert_eq!(receipt.task_ids.len(), 2);

    let event = h.store.get_event(receipt.event_id).await.unwrap().unwrap();
    assert_eq!(event.delivery_id, "d-1");
    assert_eq!(event.repository.as_deref(), Some("octo/repo"));
    assert_eq!(event.installation_id, Some(99));
    assert_eq!(event.payload, Bytes::from_static(ISSUE));
    assert_eq!(event.source, "github");
    assert_eq!(event.created_at, h.clock.now());
    let names: Vec<&str> = event.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"x-github-delivery") && names.contains(&"user-agent"));
    assert!(
        !names.contains(&"authorization"),
        "credentials are never stored"
    );
    assert!(!event.processed);

    let task = h.task(receipt.task_ids[0]).await.task;
    assert_eq!(task.task_type, analyze());
    assert_eq!(task.webhook_event_id, Some(receipt.event_id));
    assert_eq!((task.max_retries, task.run_at), (3, h.clock.now()));
    assert_eq!(task.trace_context.as_deref(), Some("00-abc-def-01"));
    assert_eq!(task.input_data, json!({"label": "first"}));
    assert_eq!(
        h.observer.lines(),
        ["created analyze 2", "delivery issues accepted -"]
    );
}

#[tokio::test]
async fn a_redelivery_is_a_duplicate_and_adds_nothing() {
    let h = harness();
    let first = h.deliver("d-1").await;
    let receipt = h
        .ingestor
        .ingest(
            &headers("issues", "d-1", ISSUE),
            Bytes::from_static(ISSUE),
            None,
        )
        .await
        .unwrap();
    assert!(receipt.duplicate);
    assert!(receipt.task_ids.is_empty());
    let tasks = h
        .store
        .list_tasks(&TaskFilter::default(), Page::default())
        .await
        .unwrap();
    assert_eq!(tasks.len(), first.len());
    assert_eq!(h.observer.count("delivery issues duplicate"), 1);
}

#[tokio::test]
async fn refused_deliveries_store_nothing() {
    let h = harness();
    let body = Bytes::from_static(ISSUE);

    let mut bad = headers("issues", "d-1", ISSUE);
    bad.insert(
        "x-hub-signature-256",
        HeaderValue::from_str(&sign(b"other body")).unwrap(),
    );
    let err = h
        .ingestor
        .ingest(&bad, body.clone(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, IngestError::Signature(SignatureError::Mismatch)),
        "{err:?}"
    );

    let mut missing = headers("issues", "d-1", ISSUE);
    missing.remove("x-hub-signature-256");
    let err = h
        .ingestor
        .ingest(&missing, body.clone(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, IngestError::Signature(SignatureError::Missing)),
        "{err:?}"
    );
    missing.insert("x-hub-signature", HeaderValue::from_static("sha1=0123"));
    let err = h
        .ingestor
        .ingest(&missing, body.clone(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, IngestError::Signature(SignatureError::Sha1Only)),
        "{err:?}"
    );

    let mut no_delivery = headers("issues", "d-1", ISSUE);
    no_delivery.remove("x-github-delivery");
    let err = h
        .ingestor
        .ingest(&no_delivery, body.clone(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, IngestError::Delivery(DeliveryError::MissingHeader(_))),
        "{err:?}"
    );

    let garbage = b"{not json";
    let err = h
        .ingestor
        .ingest(
            &headers("issues", "d-1", garbage),
            Bytes::from_static(garbage),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, IngestError::Payload(PayloadError::InvalidJson(_))),
        "{err:?}"
    );

    h.nothing_stored().await;
    // Before the signature is verified the event name is not trusted as a metric label.
    let unknown = |reason: &str| {
        h.observer
            .count(&format!("delivery unknown rejected {reason}"))
    };
    assert_eq!(unknown("signature_mismatch"), 1);
    assert_eq!(unknown("signature_sha1_only"), 1);
    assert_eq!(unknown("header_missing"), 1);
    assert_eq!(
        h.observer
            .count("delivery issues rejected payload_invalid_json"),
        1
    );
    assert_eq!(h.observer.count("created"), 0);
}

#[tokio::test]
async fn the_size_limit_is_checked_before_anything_else() {
    let h = harness();
    let big = Bytes::from(vec![b' '; 4097]);
    // No headers at all: the size still answers first.
    let err = h
        .ingestor
        .ingest(&HeaderMap::new(), big.clone(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            IngestError::Delivery(DeliveryError::TooLarge { limit: 4096 })
        ),
        "{err:?}"
    );
    h.nothing_stored().await;
    assert_eq!(
        h.observer.lines(),
        ["delivery unknown rejected payload_too_large"]
    );
}

#[tokio::test]
async fn a_ping_echoes_zen_and_is_processed_without_tasks() {
    let h = harness();
    let body = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let receipt = h
        .ingestor
        .ingest(
            &headers("ping", "d-ping", body),
            Bytes::from_static(body),
            None,
        )
        .await
        .unwrap();
    assert_eq!(receipt.zen.as_deref(), Some("Keep it logically awesome."));
    assert!(receipt.task_ids.is_empty());
    assert!(
        h.store
            .get_event(receipt.event_id)
            .await
            .unwrap()
            .unwrap()
            .processed
    );
}

#[tokio::test]
async fn a_form_encoded_delivery_stores_the_decoded_json() {
    let h = harness();
    let form = format!(
        "payload={}",
        url_encode(std::str::from_utf8(ISSUE).unwrap())
    );
    let mut map = headers("issues", "d-form", form.as_bytes());
    map.insert(
        "content-type",
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let receipt = h
        .ingestor
        .ingest(&map, Bytes::from(form), None)
        .await
        .unwrap();
    assert_eq!(receipt.task_ids.len(), 2);
    let event = h.store.get_event(receipt.event_id).await.unwrap().unwrap();
    assert_eq!(event.payload, Bytes::from_static(ISSUE));
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A queue over memory that fails on demand: every publish while `publish_down` (the broker is
/// down), and the first `finish_failures` finishes with `finish_error` (the store went away after
/// the handler had done its work).
struct Flaky {
    store: StoreQueue<MemoryStore>,
    publish_down: bool,
    finish_error: StoreErrorKind,
    finish_failures: AtomicUsize,
    finishes: AtomicUsize,
}

impl Flaky {
    fn over(store: Arc<MemoryStore>) -> Self {
        Self {
            store: StoreQueue::new(store),
            publish_down: false,
            finish_error: StoreErrorKind::Unavailable,
            finish_failures: AtomicUsize::new(0),
            finishes: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl TaskQueue for Flaky {
    async fn publish(&self, tasks: &[TaskRef]) -> Result<(), StoreError> {
        if self.publish_down {
            return Err(StoreError::new(StoreErrorKind::Unavailable, "broker down"));
        }
        self.store.publish(tasks).await
    }
    async fn claim(
        &self,
        w: &str,
        max: usize,
        lease: Duration,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Claim>, StoreError> {
        self.store.claim(w, max, lease, now).await
    }
    async fn finish(
        &self,
        c: &Claim,
        f: Finish,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<FinishReport, StoreError> {
        self.finishes.fetch_add(1, Ordering::SeqCst);
        let left = self.finish_failures.load(Ordering::SeqCst);
        if left > 0 {
            self.finish_failures.store(left - 1, Ordering::SeqCst);
            return Err(StoreError::new(self.finish_error, "connection refused"));
        }
        self.store.finish(c, f, now).await
    }
    async fn extend_lease(
        &self,
        c: &Claim,
        lease: Duration,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        TaskQueue::extend_lease(&self.store, c, lease, now).await
    }
    async fn requeue_expired(&self, now: chrono::DateTime<chrono::Utc>) -> Result<u64, StoreError> {
        self.store.requeue_expired(now).await
    }
    async fn depth(&self, now: chrono::DateTime<chrono::Utc>) -> Result<QueueDepth, StoreError> {
        self.store.depth(now).await
    }
    fn backend(&self) -> &'static str {
        "flaky"
    }
}

#[tokio::test]
async fn a_failed_publish_still_accepts_the_durable_delivery() {
    let clock = Arc::new(ManualClock::default());
    let store = Arc::new(MemoryStore::new());
    let mut router = Router::empty();
    router.add(TestRule);
    let ingestor = Ingestor::new(
        SignatureVerifier::new([WebhookSecret::new(SECRET)]),
        router,
        store.clone(),
        Arc::new(Flaky {
            publish_down: true,
            ..Flaky::over(store.clone())
        }),
        clock,
    );
    let receipt = ingestor
        .ingest(
            &headers("issues", "d-1", ISSUE),
            Bytes::from_static(ISSUE),
            None,
        )
        .await
        .unwrap();
    assert_eq!(receipt.task_ids.len(), 2);
    assert!(store.get_task(receipt.task_ids[0]).await.unwrap().is_some());
}

#[tokio::test]
async fn reprocess_routes_the_stored_payload_again_once_the_event_has_finished() {
    let h = harness();
    let first = h.deliver("d-1").await;
    let event_id = h.task(first[0]).await.task.webhook_event_id.unwrap();
    let none = ReprocessOptions::default();
    assert_eq!(
        h.ingestor.reprocess(12345, none).await.unwrap(),
        ReprocessOutcome::NotFound
    );
    // Its tasks are still open: refused, naming them, and nothing changes.
    assert_eq!(
        h.ingestor.reprocess(event_id, none).await.unwrap(),
        ReprocessOutcome::Busy {
            event_id,
            open_tasks: first.clone()
        }
    );
    let event = h.store.get_event(event_id).await.unwrap().unwrap();
    assert_eq!(event.retry_count, 0);
    // Once they finished it runs the routing again; `force` travels on the new tasks' config.
    let worker = h.worker(registry(|_, _| Ok(HandlerOutcome::done(json!({})))));
    assert_eq!(worker.run_once().await.unwrap(), 2);
    let forced = ReprocessOptions { force: true };
    let ReprocessOutcome::Reprocessed { task_ids, .. } =
        h.ingestor.reprocess(event_id, forced).await.unwrap()
    else {
        panic!("not reprocessed")
    };
    assert_eq!(task_ids.len(), 2);
    assert!(task_ids.iter().all(|id| !first.contains(id)));
    for id in &task_ids {
        assert_eq!(h.task(*id).await.task.config["force"], json!(true));
    }
    let event = h.store.get_event(event_id).await.unwrap().unwrap();
    assert_eq!((event.retry_count, event.processed), (1, false));
    let tasks = h
        .store
        .list_tasks(&TaskFilter::default(), Page::default())
        .await
        .unwrap();
    assert_eq!(tasks.len(), 4);
}

// ---------------------------------------------------------------------------------------------
// Worker
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_successful_attempt_completes_the_task_and_the_event() {
    let h = harness();
    let ids = h.deliver("d-1").await;
    let worker = h.worker(registry(|ctx, _| {
        Ok(HandlerOutcome::done(
            json!({"saw": ctx.task.input_data["label"]}),
        ))
    }));
    assert_eq!(worker.run_once().await.unwrap(), 2);
    for (id, label) in ids.iter().zip(["first", "second"]) {
        let detail = h.task(*id).await;
        assert_eq!(detail.task.status, TaskStatus::Completed);
        assert_eq!(detail.task.output_data, Some(json!({"saw": label})));
        assert_eq!(detail.executions.len(), 1);
        assert_eq!(detail.executions[0].status, ExecutionStatus::Completed);
        assert_eq!(detail.executions[0].worker_id, "w1");
    }
    let event = h
        .store
        .get_event(h.task(ids[0]).await.task.webhook_event_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(event.processed);
    assert_eq!(event.error_message, None);
    assert_eq!(h.observer.count("attempt analyze completed"), 2);
    assert_eq!(worker.run_once().await.unwrap(), 0, "nothing left to run");
}

#[tokio::test]
async fn retryable_failures_back_off_then_fail_when_retries_are_used_up() {
    let h = harness();
    let ids = h.deliver("d-1").await;
    let worker = h.worker(registry(|_, _| Err(TaskError::retryable("upstream 502"))));
    assert_eq!(worker.run_once().await.unwrap(), 2);
    // Backoff without jitter: 1 s, 2 s, 4 s.
    for (retry, wait) in [(1u32, 1u64), (2, 2), (3, 4)] {
        let task = h.task(ids[0]).await.task;
        assert_eq!(task.status, TaskStatus::Retrying);
        assert_eq!(task.retry_count, retry);
        assert_eq!(
            task.run_at,
            clock::add(h.clock.now(), Duration::from_secs(wait))
        );
        assert_eq!(task.error_message.as_deref(), Some("upstream 502"));
        h.clock
            .advance(Duration::from_secs(wait) - Duration::from_millis(1));
        assert_eq!(
            worker.run_once().await.unwrap(),
            0,
            "not due before its backoff"
        );
        h.clock.advance(Duration::from_millis(1));
        assert_eq!(worker.run_once().await.unwrap(), 2);
    }
    let detail = h.task(ids[0]).await;
    assert_eq!(detail.task.status, TaskStatus::Failed);
    assert_eq!(detail.task.retry_count, 3);
    assert_eq!(
        detail.task.error_message.as_deref(),
        Some("upstream 502 (retries exhausted)")
    );
    assert_eq!(detail.executions.len(), 4);
    assert!(
        detail
            .executions
            .iter()
            .all(|e| e.status == ExecutionStatus::Failed)
    );
    let event = h
        .store
        .get_event(detail.task.webhook_event_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(event.processed);
    assert_eq!(
        event.error_message.as_deref(),
        Some("upstream 502 (retries exhausted)")
    );
    assert_eq!(h.observer.count("retry analyze"), 6);
    assert_eq!(h.observer.count("attempt analyze failed"), 2);
}

#[tokio::test]
async fn a_permanent_failure_fails_at_once() {
    let h = harness();
    let ids = h.deliver("d-1").await;
    let worker = h.worker(registry(|_, _| {
        Err(TaskError::permanent("pull request not found"))
    }));
    worker.run_once().await.unwrap();
    let detail = h.task(ids[0]).await;
    assert_eq!(detail.task.status, TaskStatus::Failed);
    assert_eq!((detail.task.retry_count, detail.executions.len()), (0, 1));
    assert_eq!(
        detail.task.error_message.as_deref(),
        Some("pull request not found")
    );
}

#[tokio::test]
async fn an_open_breaker_defers_without_using_a_retry() {
    let h = harness();
    let ids = h.deliver("d-1").await;
    let breaker = Arc::new(CircuitBreaker::new(
        "github",
        BreakerConfig {
            failure_threshold: 1,
            recovery: Duration::from_secs(30),
        },
        h.clock.clone(),
    ));
    breaker.on_failure();
    let b = breaker.clone();
    let worker = h.worker(registry(move |_, _| {
        b.acquire()
            .map_err(|open| TaskError::deferred(open.retry_after, open.to_string()))?;
        b.on_success();
        Ok(HandlerOutcome::done(json!({})))
    }));
    worker.run_once().await.unwrap();
    let detail = h.task(ids[0]).await;
    assert_eq!(detail.task.status, TaskStatus::Pending);
    assert_eq!(detail.task.retry_count, 0);
    assert_eq!(
        detail.task.run_at,
        clock::add(h.clock.now(), Duration::from_secs(30))
    );
    assert_eq!(detail.executions[0].status, ExecutionStatus::Deferred);
    assert_eq!(h.observer.count("retry"), 0);

    h.clock.advance(Duration::from_secs(30));
    worker.run_once().await.unwrap();
    let statuses: Vec<TaskStatus> = [h.task(ids[0]).await, h.task(ids[1]).await]
        .iter()
        .map(|d| d.task.status)
        .collect();
    // One probe passes and closes the breaker; the other task was refused while it was out
    // (or ran after it closed), never failed.
    assert!(statuses.contains(&TaskStatus::Completed));
    assert!(
        statuses
            .iter()
            .all(|s| matches!(s, TaskStatus::Completed | TaskStatus::Pending))
    );
}

#[tokio::test]
async fn a_waiting_handler_is_rescheduled_with_its_progress_state() {
    let h = harness();
    let ids = h.deliver("d-1").await;
    let worker = h.worker(registry(|ctx, _| {
        let polls = ctx
            .task
            .output_data
            .as_ref()
            .and_then(|o| o["polls"].as_u64())
            .unwrap_or(0);
        if polls < 2 {
            Ok(HandlerOutcome::Waiting {
                after: Duration::from_secs(10),
                output: Some(json!({"polls": polls + 1})),
            })
        } else {
            Ok(HandlerOutcome::done(json!({"polls": polls, "done": true})))
        }
    }));
    worker.run_once().await.unwrap();
    let task = h.task(ids[0]).await.task;
    assert_eq!((task.status, task.retry_count), (TaskStatus::Pending, 0));
    assert_eq!(task.output_data, Some(json!({"polls": 1})));
    assert_eq!(
        task.run_at,
        clock::add(h.clock.now(), Duration::from_secs(10))
    );
    assert_eq!(worker.run_once().await.unwrap(), 0);
    for _ in 0..2 {
        h.clock.advance(Duration::from_secs(10));
        assert_eq!(worker.run_once().await.unwrap(), 2);
    }
    let detail = h.task(ids[0]).await;
    assert_eq!(detail.task.status, TaskStatus::Completed);
    assert_eq!(
        detail.task.output_data,
        Some(json!({"polls": 2, "done": true}))
    );
    assert_eq!(detail.task.retry_count, 0);
    let kinds: Vec<ExecutionStatus> = detail.executions.iter().map(|e| e.status).collect();
    assert_eq!(
        kinds,
        [
            ExecutionStatus::Deferred,
            ExecutionStatus::Deferred,
            ExecutionStatus::Completed
        ]
    );
}

#[tokio::test]
async fn a_crashed_workers_task_returns_after_its_lease_and_runs_again() {
    let h = harness();
    let ids = h.deliver("d-1").await;
    // A worker claims both tasks and dies without reporting back.
    let crashed = h
        .queue
        .claim("crashed", 10, Duration::from_secs(60), h.clock.now())
        .await
        .unwrap();
    assert_eq!(crashed.len(), 2);
    let worker = h.worker(registry(|_, _| Ok(HandlerOutcome::done(json!({})))));
    assert_eq!(
        worker.run_once().await.unwrap(),
        0,
        "leased tasks are not claimable"
    );
    h.clock.advance(Duration::from_secs(59));
    assert_eq!(h.queue.requeue_expired(h.clock.now()).await.unwrap(), 0);
    h.clock.advance(Duration::from_secs(1));
    assert_eq!(h.queue.requeue_expired(h.clock.now()).await.unwrap(), 2);
    assert_eq!(worker.run_once().await.unwrap(), 2);
    let detail = h.task(ids[0]).await;
    assert_eq!(detail.task.status, TaskStatus::Completed);
    assert_eq!(
        detail.task.retry_count, 1,
        "the lost attempt counts as a failed one"
    );
    let kinds: Vec<ExecutionStatus> = detail.executions.iter().map(|e| e.status).collect();
    assert_eq!(
        kinds,
        [ExecutionStatus::Abandoned, ExecutionStatus::Completed]
    );
    // The crashed worker's late report is refused.
    let late = h
        .queue
        .finish(
            &crashed[0],
            Finish::Failed {
                error: "late".into(),
            },
            h.clock.now(),
        )
        .await;
    assert_eq!(late.unwrap_err().kind(), StoreErrorKind::Conflict);
    assert_eq!(h.task(ids[0]).await.task.status, TaskStatus::Completed);
}

#[tokio::test]
async fn only_failed_or_cancelled_tasks_can_be_retried_by_hand() {
    let h = harness();
    let ids = h.deliver("d-1").await;
    assert_eq!(
        h.store.retry_task(ids[0], h.clock.now()).await.unwrap(),
        RetryOutcome::NotRetryable(TaskStatus::Pending)
    );
    let fail_first = registry(|_, n| {
        if n <= 2 {
            Err(TaskError::permanent("bad input"))
        } else {
            Ok(HandlerOutcome::done(json!({"n": n})))
        }
    });
    let worker = h.worker(fail_first);
    worker.run_once().await.unwrap();
    assert_eq!(h.task(ids[0]).await.task.status, TaskStatus::Failed);
    assert!(matches!(
        h.store.retry_task(ids[0], h.clock.now()).await.unwrap(),
        RetryOutcome::Scheduled(_)
    ));
    assert_eq!(worker.run_once().await.unwrap(), 1);
    assert_eq!(h.task(ids[0]).await.task.status, TaskStatus::Completed);
    assert_eq!(
        h.store.retry_task(ids[0], h.clock.now()).await.unwrap(),
        RetryOutcome::NotRetryable(TaskStatus::Completed)
    );
}

#[tokio::test]
async fn followups_are_linked_to_the_event_and_parent_and_inherit_context() {
    let h = harness();
    let receipt = h
        .ingestor
        .ingest(
            &headers("issues", "d-1", ISSUE),
            Bytes::from_static(ISSUE),
            Some("00-trace-span-01".into()),
        )
        .await
        .unwrap();
    let codegen = TaskType::CODEGEN_TRIGGER;
    let mut registry = registry(move |ctx, _| {
        let mut followup = TaskSpec::new(TaskType::CODEGEN_TRIGGER);
        followup.input_data = json!({"from": ctx.task.task_id});
        let followups = if ctx.task.input_data["label"] == "first" {
            vec![followup]
        } else {
            vec![]
        };
        Ok(HandlerOutcome::Completed {
            output: json!({}),
            followups,
        })
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    registry.register(
        codegen.clone(),
        FnHandler {
            calls: AtomicUsize::new(0),
            f: move |_: &TaskContext, _| {
                c.fetch_add(1, Ordering::SeqCst);
                Ok(HandlerOutcome::done(json!({"ran": true})))
            },
        },
    );
    let worker = h.worker(registry);
    assert_eq!(worker.run_once().await.unwrap(), 2);
    let event = h.store.get_event(receipt.event_id).await.unwrap().unwrap();
    assert!(!event.processed, "the follow-up is still open");
    let children = h
        .store
        .list_tasks(
            &TaskFilter {
                task_type: Some(codegen),
                ..TaskFilter::default()
            },
            Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(children.len(), 1);
    let child = &children[0];
    assert_eq!(child.parent_task_id, Some(receipt.task_ids[0]));
    assert_eq!(child.webhook_event_id, Some(receipt.event_id));
    assert_eq!(child.repository.as_deref(), Some("octo/repo"));
    assert_eq!(child.pr_number, Some(7));
    assert_eq!(child.trace_context.as_deref(), Some("00-trace-span-01"));
    assert_eq!(child.max_retries, 3);

    assert_eq!(worker.run_once().await.unwrap(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(
        h.store
            .get_event(receipt.event_id)
            .await
            .unwrap()
            .unwrap()
            .processed
    );
}

#[tokio::test]
async fn a_task_without_handler_fails_and_a_panic_is_a_retryable_failure() {
    let h = harness();
    let ids = h.deliver("d-1").await;
    h.worker(HandlerRegistry::new()).run_once().await.unwrap();
    let task = h.task(ids[0]).await.task;
    assert_eq!(task.status, TaskStatus::Failed);
    assert_eq!(
        task.error_message.as_deref(),
        Some("no handler for task type analyze")
    );

    let ids = h.deliver("d-2").await;
    let worker = h.worker(registry(|ctx, _| {
        if ctx.task.input_data["label"] == "first" {
            panic!("handler bug");
        }
        Ok(HandlerOutcome::done(json!({})))
    }));
    assert_eq!(worker.run_once().await.unwrap(), 2);
    let task = h.task(ids[0]).await.task;
    assert_eq!(task.status, TaskStatus::Retrying);
    assert_eq!(
        task.error_message.as_deref(),
        Some("handler panicked: handler bug")
    );
    assert_eq!(
        h.task(ids[1]).await.task.status,
        TaskStatus::Completed,
        "the other task was unaffected"
    );
}

#[tokio::test]
async fn a_handler_records_its_external_run_before_returning() {
    let h = harness();
    let ids = h.deliver("d-1").await;
    struct Starts;
    #[async_trait]
    impl TaskHandler for Starts {
        async fn handle(&self, ctx: &TaskContext) -> Result<HandlerOutcome, TaskError> {
            ctx.record_external_run(&ExternalRun {
                id: "77".into(),
                url: None,
            })
            .await?;
            Err(TaskError::retryable("crash after start"))
        }
    }
    let mut registry = HandlerRegistry::new();
    registry.register(analyze(), Starts);
    h.worker(registry).run_once().await.unwrap();
    let task = h.task(ids[0]).await.task;
    assert_eq!(task.status, TaskStatus::Retrying);
    assert_eq!(task.codegen_task_id.as_deref(), Some("77"));
}

#[tokio::test]
async fn run_once_runs_its_claims_concurrently() {
    let h = harness();
    h.deliver("d-1").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    struct Meet(Arc<tokio::sync::Barrier>);
    #[async_trait]
    impl TaskHandler for Meet {
        async fn handle(&self, _: &TaskContext) -> Result<HandlerOutcome, TaskError> {
            self.0.wait().await;
            Ok(HandlerOutcome::done(json!({})))
        }
    }
    let mut registry = HandlerRegistry::new();
    registry.register(analyze(), Meet(barrier));
    let ran = tokio::time::timeout(Duration::from_secs(5), h.worker(registry).run_once()).await;
    assert_eq!(ran.expect("both handlers must run at once").unwrap(), 2);
}

/// The `first` task: moves the manual clock past its lease, waits (tokio time) long enough for
/// the worker to renew the lease, records how many leases a sweep then finds expired, and
/// sleeps for an hour. The `second` task finishes after 50 ms.
struct Sleeper {
    clock: Arc<ManualClock>,
    store: Arc<MemoryStore>,
    expired_seen: Arc<Mutex<Option<u64>>>,
}

#[async_trait]
impl TaskHandler for Sleeper {
    async fn handle(&self, ctx: &TaskContext) -> Result<HandlerOutcome, TaskError> {
        if ctx.task.input_data["label"] == "first" {
            self.clock.advance(Duration::from_secs(100));
            tokio::time::sleep(Duration::from_secs(30)).await;
            let expired = StoreQueue::new(self.store.clone())
                .requeue_expired(self.clock.now())
                .await?;
            *self.expired_seen.lock().unwrap() = Some(expired);
            tokio::time::sleep(Duration::from_secs(3600)).await;
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(HandlerOutcome::done(json!({})))
    }
}

#[tokio::test(start_paused = true)]
async fn leases_are_renewed_and_shutdown_releases_unfinished_tasks_after_the_grace_period() {
    let h = harness();
    let ids = h.deliver("d-1").await;
    let expired_seen = Arc::new(Mutex::new(None));
    let mut registry = HandlerRegistry::new();
    registry.register(
        analyze(),
        Sleeper {
            clock: h.clock.clone(),
            store: h.store.clone(),
            expired_seen: expired_seen.clone(),
        },
    );
    let worker = h.worker(registry);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    // Virtual time: the short task finishes, the long one has its lease renewed.
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert_eq!(h.task(ids[1]).await.task.status, TaskStatus::Completed);
    assert_eq!(
        *expired_seen.lock().unwrap(),
        Some(0),
        "the running task's lease was renewed"
    );
    let running = h.task(ids[0]).await.task;
    assert_eq!(running.status, TaskStatus::Running);
    assert!(running.lease_expires_at.unwrap() > h.clock.now());
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    let detail = h.task(ids[0]).await;
    assert_eq!(
        detail.task.status,
        TaskStatus::Pending,
        "released, not failed"
    );
    assert_eq!((detail.task.retry_count, detail.task.attempts), (0, 1));
    assert_eq!(detail.task.run_at, h.clock.now());
    assert_eq!(detail.executions[0].status, ExecutionStatus::Released);
    assert_eq!(detail.task.lease_owner, None);
}

#[tokio::test(start_paused = true)]
async fn run_keeps_working_until_shutdown_and_picks_up_new_work() {
    let h = harness();
    let worker = h.worker(registry(|_, _| Ok(HandlerOutcome::done(json!({})))));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let ids = h.deliver("d-late").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    for id in ids {
        assert_eq!(h.task(id).await.task.status, TaskStatus::Completed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_workers_run_every_task_exactly_once() {
    let h = harness();
    let mut all = Vec::new();
    for i in 0..40 {
        all.extend(h.deliver(&format!("d-{i}")).await);
    }
    let runs: Arc<Mutex<HashMap<Uuid, usize>>> = Arc::default();
    struct Count(Arc<Mutex<HashMap<Uuid, usize>>>);
    #[async_trait]
    impl TaskHandler for Count {
        async fn handle(&self, ctx: &TaskContext) -> Result<HandlerOutcome, TaskError> {
            *self.0.lock().unwrap().entry(ctx.task.task_id).or_default() += 1;
            tokio::task::yield_now().await;
            Ok(HandlerOutcome::done(Value::Null))
        }
    }
    let mut stops = Vec::new();
    let mut handles = Vec::new();
    for w in 0..4 {
        let mut registry = HandlerRegistry::new();
        registry.register(analyze(), Count(runs.clone()));
        let worker = Worker::new(
            h.queue.clone(),
            h.store.clone(),
            registry,
            h.clock.clone(),
            config(&format!("w{w}")),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        handles.push(tokio::spawn(worker.run(async move {
            let _ = stopped.await;
        })));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let depth = h.queue.depth(h.clock.now()).await.unwrap();
        if depth.ready == 0 && depth.running == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "workers did not drain the queue: {depth:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for stop in stops {
        stop.send(()).unwrap();
    }
    for handle in handles {
        handle.await.unwrap().unwrap();
    }
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), all.len());
    assert!(runs.values().all(|&n| n == 1), "a task ran more than once");
    for id in all {
        let detail = h.task(id).await;
        assert_eq!(
            (detail.task.status, detail.executions.len()),
            (TaskStatus::Completed, 1)
        );
    }
}

/// A queue whose `finish` never answers (the store hangs); everything else goes to memory.
struct HangingFinish(StoreQueue<MemoryStore>);

#[async_trait]
impl TaskQueue for HangingFinish {
    async fn publish(&self, _: &[TaskRef]) -> Result<(), StoreError> {
        Ok(())
    }
    async fn claim(
        &self,
        w: &str,
        max: usize,
        lease: Duration,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Claim>, StoreError> {
        self.0.claim(w, max, lease, now).await
    }
    async fn finish(
        &self,
        _: &Claim,
        _: Finish,
        _: chrono::DateTime<chrono::Utc>,
    ) -> Result<FinishReport, StoreError> {
        std::future::pending().await
    }
    async fn extend_lease(
        &self,
        c: &Claim,
        lease: Duration,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        TaskQueue::extend_lease(&self.0, c, lease, now).await
    }
    async fn requeue_expired(&self, now: chrono::DateTime<chrono::Utc>) -> Result<u64, StoreError> {
        self.0.requeue_expired(now).await
    }
    async fn depth(&self, now: chrono::DateTime<chrono::Utc>) -> Result<QueueDepth, StoreError> {
        self.0.depth(now).await
    }
    fn backend(&self) -> &'static str {
        "hanging"
    }
}

/// Shutdown is bounded even when the store stops answering: after the grace period the
/// unfinished tasks are released, and if even that cannot be recorded within another grace
/// period the worker gives up on them (their leases expire) and returns.
#[tokio::test(start_paused = true)]
async fn shutdown_returns_even_when_the_store_hangs() {
    let h = harness();
    h.deliver("d-1").await;
    struct Forever;
    #[async_trait]
    impl TaskHandler for Forever {
        async fn handle(&self, _: &TaskContext) -> Result<HandlerOutcome, TaskError> {
            std::future::pending().await
        }
    }
    let mut registry = HandlerRegistry::new();
    registry.register(analyze(), Forever);
    let worker = Worker::new(
        Arc::new(HangingFinish(StoreQueue::new(h.store.clone()))),
        h.store.clone(),
        registry,
        h.clock.clone(),
        config("w1"),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        h.queue.depth(h.clock.now()).await.unwrap().running,
        2,
        "both tasks are running"
    );
    stop.send(()).unwrap();
    let returned = tokio::time::timeout(Duration::from_secs(3600), run).await;
    assert!(
        returned.is_ok(),
        "the worker must stop even though the store hangs"
    );
    returned.unwrap().unwrap().unwrap();
}

async fn run_with_flaky_finish(
    kind: StoreErrorKind,
    failures: usize,
) -> (Harness, Vec<Uuid>, usize, usize) {
    let h = harness();
    let ids = h.deliver("d-1").await;
    let queue = Arc::new(Flaky {
        finish_error: kind,
        finish_failures: AtomicUsize::new(failures),
        ..Flaky::over(h.store.clone())
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let worker = Worker::new(
        queue.clone(),
        h.store.clone(),
        registry(move |_, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(HandlerOutcome::done(json!({})))
        }),
        h.clock.clone(),
        WorkerConfig {
            concurrency: 1,
            ..config("w1")
        },
    );
    worker.run_once().await.unwrap();
    let (handled, finishes) = (
        calls.load(Ordering::SeqCst),
        queue.finishes.load(Ordering::SeqCst),
    );
    (h, ids, handled, finishes)
}

#[tokio::test]
async fn an_outcome_the_store_could_not_take_is_recorded_once_it_answers_again() {
    let (h, ids, handled, finishes) = run_with_flaky_finish(StoreErrorKind::Unavailable, 2).await;
    assert_eq!(
        (handled, finishes),
        (1, 3),
        "ran once, recorded on the third try"
    );
    let detail = h.task(ids[0]).await;
    assert_eq!(detail.task.status, TaskStatus::Completed);
    assert_eq!(detail.executions.len(), 1);
}

#[tokio::test]
async fn a_lost_claim_is_not_recorded_again() {
    let (h, ids, handled, finishes) = run_with_flaky_finish(StoreErrorKind::Conflict, 1).await;
    assert_eq!((handled, finishes), (1, 1));
    // The lease decides: the task is still running until it expires.
    assert_eq!(h.task(ids[0]).await.task.status, TaskStatus::Running);
}
