//! What a handler gets in its [`TaskContext`]: the task's facts and typed input, the delivery's
//! payload, follow-ups about the same pull request, and a cancellation signal that fires when
//! the attempt is given up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use orchestrator_core::engine::{Ingestor, Worker, WorkerConfig};
use orchestrator_core::handler::HandlerRegistry;
use orchestrator_core::prelude::*;
use orchestrator_core::queue::StoreQueue;
use orchestrator_core::routing::Router;
use orchestrator_core::signature::{SignatureVerifier, WebhookSecret};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

const SECRET: &str = "context-secret";
const LABEL: TaskType = TaskType::from_static("label_issue");
const NOTIFY: TaskType = TaskType::from_static("notify");
const OPENED: &[u8] = br#"{"action":"opened","issue":{"number":12,"title":"Crash"},
    "repository":{"full_name":"octo/repo"},"installation":{"id":7},"sender":{"login":"mona"}}"#;

struct Setup {
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    ingestor: Ingestor,
}

fn setup() -> Setup {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::default());
    let rules = Router::empty()
        .with_rule(EventRule::new("label_new_issues", "issues", LABEL).with_actions(["opened"]));
    let ingestor = Ingestor::new(
        SignatureVerifier::new([WebhookSecret::new(SECRET)]),
        rules,
        store.clone(),
        Arc::new(StoreQueue::new(store.clone())),
        clock.clone(),
    );
    Setup {
        store,
        clock,
        ingestor,
    }
}

impl Setup {
    async fn deliver(&self) -> Uuid {
        let signature = SignatureVerifier::new([WebhookSecret::new(SECRET)])
            .sign(OPENED)
            .unwrap();
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-github-event", "issues"),
            ("x-github-delivery", "d-1"),
            ("content-type", "application/json"),
            ("x-hub-signature-256", signature.as_str()),
        ] {
            headers.insert(name, HeaderValue::from_str(value).unwrap());
        }
        let receipt = self
            .ingestor
            .ingest(&headers, Bytes::from_static(OPENED), None)
            .await
            .unwrap();
        receipt.task_ids[0]
    }

    fn worker(&self, registry: HandlerRegistry) -> Worker {
        let config = WorkerConfig {
            poll_interval: Duration::from_millis(5),
            shutdown_grace: Duration::from_millis(100),
            ..WorkerConfig::default()
        };
        Worker::new(
            Arc::new(StoreQueue::new(self.store.clone())),
            self.store.clone(),
            registry,
            self.clock.clone(),
            config,
        )
    }

    async fn task(&self, id: Uuid) -> Task {
        self.store.get_task(id).await.unwrap().unwrap().task
    }
}

#[derive(Deserialize)]
struct IssuesOpened {
    issue: Issue,
}

#[derive(Deserialize)]
struct Issue {
    number: u64,
    title: String,
}

/// Reads everything the context offers and reports it as output, with a follow-up.
struct Inspect;

#[async_trait]
impl TaskHandler for Inspect {
    async fn handle(&self, ctx: &TaskContext) -> Result<HandlerOutcome, TaskError> {
        let input: EventInput = ctx.input()?;
        let opened: IssuesOpened = ctx.payload().await?;
        let repo = ctx.repo()?;
        let mut followup = ctx.followup(NOTIFY);
        followup.input_data = json!({ "issue": opened.issue.number });
        Ok(HandlerOutcome::done(json!({
            "repo": repo.full_name(),
            "installation": input.installation_id,
            "installation_id": ctx.installation_id(),
            "number": opened.issue.number,
            "title": opened.issue.title,
            "now": ctx.now,
        }))
        .with_followup(followup))
    }
}

#[tokio::test]
async fn a_handler_reads_its_input_the_delivery_payload_and_creates_a_followup() {
    let s = setup();
    let id = s.deliver().await;
    let mut registry = HandlerRegistry::new();
    registry.register(LABEL, Inspect);
    let worker = s.worker(registry).with_events(s.store.clone());
    assert_eq!(worker.run_once().await.unwrap(), 1);

    let task = s.task(id).await;
    assert_eq!(task.status, TaskStatus::Completed, "{task:?}");
    assert_eq!(
        task.output_data.unwrap(),
        json!({"repo": "octo/repo", "installation": 7, "installation_id": 7, "number": 12,
               "title": "Crash",
               "now": s.clock.now()})
    );
    let tasks = s
        .store
        .list_tasks(&TaskFilter::default(), Page::default())
        .await
        .unwrap();
    let notify = tasks.iter().find(|t| t.task_type == NOTIFY).unwrap();
    assert_eq!(notify.parent_task_id, Some(id));
    assert_eq!(notify.repository.as_deref(), Some("octo/repo"));
    assert_eq!(notify.input_data, json!({"issue": 12}));
}

#[tokio::test]
async fn without_an_event_store_reading_the_payload_fails_the_task_with_a_clear_message() {
    let s = setup();
    let id = s.deliver().await;
    let mut registry = HandlerRegistry::new();
    registry.register(LABEL, Inspect);
    s.worker(registry).run_once().await.unwrap();
    let task = s.task(id).await;
    assert_eq!(task.status, TaskStatus::Failed);
    assert!(task.error_message.unwrap().contains("Worker::with_events"),);
}

/// Never returns; notes when its cancellation signal fires.
struct Stubborn(Arc<AtomicBool>);

#[async_trait]
impl TaskHandler for Stubborn {
    async fn handle(&self, ctx: &TaskContext) -> Result<HandlerOutcome, TaskError> {
        let (token, fired) = (ctx.cancellation().clone(), self.0.clone());
        tokio::spawn(async move {
            token.cancelled().await;
            fired.store(true, Ordering::SeqCst);
        });
        std::future::pending::<()>().await;
        Ok(HandlerOutcome::done(Value::Null))
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_past_the_grace_period_fires_the_attempts_cancellation_signal() {
    let s = setup();
    let id = s.deliver().await;
    let fired = Arc::new(AtomicBool::new(false));
    let mut registry = HandlerRegistry::new();
    registry.register(LABEL, Stubborn(fired.clone()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(s.worker(registry).run(async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(s.task(id).await.status, TaskStatus::Running);
    assert!(!fired.load(Ordering::SeqCst));
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(fired.load(Ordering::SeqCst), "the handler was told");
    assert_eq!(s.task(id).await.status, TaskStatus::Pending, "released");
}
