//! The builder in-process, on the in-memory store: roles, the background-service extension
//! point, replacing handlers and rules, and the shutdown of `serve` and `run_workers`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use orchestrator_core::prelude::*;
use orchestrator_server::{BackgroundService, Components, Orchestrator, OrchestratorBuilder, Role};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::support::{SECRET, corpus};

/// Counts its runs and how many stopped when told to.
#[derive(Default)]
struct Probe {
    started: AtomicUsize,
    stopped: AtomicUsize,
    running: Notify,
}

struct ProbeService(Arc<Probe>);

#[async_trait]
impl BackgroundService for ProbeService {
    fn name(&self) -> &str {
        "probe"
    }

    async fn run(&self, components: Components, shutdown: CancellationToken) {
        assert_eq!(components.queue().backend(), "memory");
        assert!(components.store_as::<MemoryStore>().is_some());
        self.0.started.fetch_add(1, Ordering::SeqCst);
        self.0.running.notify_one();
        shutdown.cancelled().await;
        self.0.stopped.fetch_add(1, Ordering::SeqCst);
    }
}

/// Answers every task with a fixed output.
struct Fixed(Value);

#[async_trait]
impl TaskHandler for Fixed {
    async fn handle(&self, _ctx: &TaskContext) -> Result<HandlerOutcome, TaskError> {
        Ok(HandlerOutcome::done(self.0.clone()))
    }
}

fn builder(store: &Arc<MemoryStore>) -> OrchestratorBuilder {
    Orchestrator::builder()
        .store(store.clone())
        .webhook_secret(SECRET)
        .admin_token("builder-admin-token-0123")
        .rate_limits(orchestrator_axum::RateLimits::OFF)
}

pub(crate) struct Running {
    pub(crate) base: String,
    pub(crate) stop: CancellationToken,
    pub(crate) served: tokio::task::JoinHandle<Result<(), orchestrator_server::ServerError>>,
}

pub(crate) async fn serve(orchestrator: &Orchestrator) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let served = tokio::spawn(orchestrator.serve(listener, stop.clone().cancelled_owned()));
    Running { base, stop, served }
}

pub(crate) async fn deliver(base: &str, event: &str, body: &[u8]) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/api/v1/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", uuid::Uuid::new_v4().to_string())
        .header(
            "x-hub-signature-256",
            orchestrator_server::send::sign(SECRET.as_bytes(), body),
        )
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

async fn finished(store: &MemoryStore) -> Vec<Task> {
    let started = Instant::now();
    loop {
        let tasks = store
            .list_tasks(&TaskFilter::default(), Page::default())
            .await
            .unwrap();
        if !tasks.is_empty() && tasks.iter().all(|t| t.status.is_terminal()) {
            return tasks;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{tasks:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_background_service_runs_with_the_workers_and_stops_at_shutdown() {
    let store = Arc::new(MemoryStore::new());
    let probe = Arc::new(Probe::default());
    let orchestrator = builder(&store)
        .background(ProbeService(probe.clone()))
        .build()
        .await
        .unwrap();
    let running = serve(&orchestrator).await;
    probe.running.notified().await;
    assert_eq!(probe.started.load(Ordering::SeqCst), 1);
    running.stop.cancel();
    running.served.await.unwrap().unwrap();
    assert_eq!(probe.stopped.load(Ordering::SeqCst), 1, "told to stop");

    // run_workers runs it too.
    let stop = CancellationToken::new();
    let workers = tokio::spawn(orchestrator.run_workers(stop.clone().cancelled_owned()));
    probe.running.notified().await;
    stop.cancel();
    workers.await.unwrap().unwrap();
    assert_eq!(probe.stopped.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_api_process_serves_the_api_but_runs_no_workers_and_no_worker_services() {
    let store = Arc::new(MemoryStore::new());
    let probe = Arc::new(Probe::default());
    let orchestrator = builder(&store)
        .role(Role::Api)
        .background(ProbeService(probe.clone()))
        .build()
        .await
        .unwrap();
    let running = serve(&orchestrator).await;
    let push = corpus("push/with-new-branch.payload.json");
    assert_eq!(deliver(&running.base, "push", &push).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tasks = store
        .list_tasks(&TaskFilter::default(), Page::default())
        .await
        .unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].status, TaskStatus::Pending, "no worker here");
    running.stop.cancel();
    running.served.await.unwrap().unwrap();
    assert_eq!(probe.started.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_worker_process_answers_only_probes() {
    let store = Arc::new(MemoryStore::new());
    let orchestrator = builder(&store).role(Role::Worker).build().await.unwrap();
    let running = serve(&orchestrator).await;
    for (path, status) in [
        ("/health", 200),
        ("/health/live", 200),
        ("/metrics", 200),
        ("/api/v1/tasks", 404),
    ] {
        let r = reqwest::get(format!("{}{path}", running.base))
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
    }
    let push = corpus("push/with-new-branch.payload.json");
    assert_eq!(deliver(&running.base, "push", &push).await.status(), 404);
    running.stop.cancel();
    running.served.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_built_in_handler_and_rule_are_replaced_and_a_rule_is_removed() {
    let store = Arc::new(MemoryStore::new());
    const LABEL: TaskType = TaskType::from_static("label_issue");
    let orchestrator = builder(&store)
        .handler(TaskType::PUSH_ANALYSIS, Fixed(json!({"mine": true})))
        .rule(EventRule::new("issues_opened", "issues", LABEL).with_actions(["opened"]))
        .handler(LABEL, Fixed(json!({"labelled": true})))
        .remove_rule("pull_request_analysis")
        .build()
        .await
        .unwrap();
    let running = serve(&orchestrator).await;
    let base = &running.base;
    assert_eq!(
        deliver(base, "push", &corpus("push/with-new-branch.payload.json"))
            .await
            .status(),
        200
    );
    assert_eq!(
        deliver(base, "issues", &corpus("issues/opened.payload.json"))
            .await
            .status(),
        200
    );
    let answer: Value = deliver(
        base,
        "pull_request",
        &corpus("pull_request/opened.payload.json"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        answer["result"]["status"], "stored",
        "no rule routes it: {answer}"
    );
    let tasks = finished(&store).await;
    let output = |t: TaskType| {
        let task = tasks.iter().find(|x| x.task_type == t).unwrap();
        assert_eq!(task.status, TaskStatus::Completed, "{task:#?}");
        task.output_data.clone().unwrap()
    };
    assert_eq!(output(TaskType::PUSH_ANALYSIS), json!({"mine": true}));
    assert_eq!(output(LABEL), json!({"labelled": true}));
    assert_eq!(tasks.len(), 2);
    running.stop.cancel();
    running.served.await.unwrap().unwrap();
}

#[tokio::test]
async fn without_the_built_in_handlers_a_built_in_task_fails_with_no_handler() {
    let store = Arc::new(MemoryStore::new());
    let orchestrator = builder(&store)
        .without_builtin_handlers()
        .build()
        .await
        .unwrap();
    let running = serve(&orchestrator).await;
    let push = corpus("push/with-new-branch.payload.json");
    assert_eq!(deliver(&running.base, "push", &push).await.status(), 200);
    let tasks = finished(&store).await;
    assert_eq!(tasks[0].status, TaskStatus::Failed);
    assert!(
        tasks[0]
            .error_message
            .as_deref()
            .unwrap()
            .contains("no handler for task type push_analysis")
    );
    running.stop.cancel();
    running.served.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_full_router_mounts_in_another_app_with_the_admin_api() {
    let store = Arc::new(MemoryStore::new());
    let orchestrator = builder(&store).build().await.unwrap();
    let app = axum::Router::new()
        .route("/mine", axum::routing::get(|| async { "mine" }))
        .merge(orchestrator.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    let mine = client.get(format!("{base}/mine")).send().await.unwrap();
    assert_eq!(mine.text().await.unwrap(), "mine");
    let tasks = client
        .get(format!("{base}/api/v1/tasks"))
        .bearer_auth("builder-admin-token-0123")
        .send()
        .await
        .unwrap();
    assert_eq!(tasks.status(), 200);
    let locked = client
        .get(format!("{base}/api/v1/tasks"))
        .send()
        .await
        .unwrap();
    assert_eq!(locked.status(), 401);
    let live = client
        .get(format!("{base}/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.text().await.unwrap(), "ok");
}

/// `ENABLE_METRICS=false` is honoured: `/metrics` answers 404 with the error body, deliveries
/// still work, and nothing is recorded (no delivery counted, no queue gauge set by `/health`).
#[tokio::test]
async fn with_metrics_off_nothing_is_recorded_and_metrics_is_not_served() {
    let store = Arc::new(MemoryStore::new());
    let orchestrator = builder(&store)
        .configure(|c| c.enable_metrics = false)
        .build()
        .await
        .unwrap();
    let running = serve(&orchestrator).await;
    let push = corpus("push/with-new-branch.payload.json");
    assert_eq!(deliver(&running.base, "push", &push).await.status(), 200);
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{}/health", running.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let metrics = client
        .get(format!("{}/metrics", running.base))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 404);
    let body: Value = metrics.json().await.unwrap();
    assert_eq!(body["status_code"], 404);
    assert_eq!(body["path"], "/metrics");
    let recorded = orchestrator.components().metrics().render();
    assert!(
        !recorded.contains("webhook_events_total{") && !recorded.contains("celery_queue_size{"),
        "nothing may be recorded with metrics off:\n{recorded}"
    );
    running.stop.cancel();
    running.served.await.unwrap().unwrap();
}

/// The same delivery with metrics on is counted and served (the test above can fail).
#[tokio::test]
async fn with_metrics_on_a_delivery_is_counted_and_served() {
    let store = Arc::new(MemoryStore::new());
    let orchestrator = builder(&store).build().await.unwrap();
    let running = serve(&orchestrator).await;
    let push = corpus("push/with-new-branch.payload.json");
    assert_eq!(deliver(&running.base, "push", &push).await.status(), 200);
    let metrics = reqwest::Client::new()
        .get(format!("{}/metrics", running.base))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("webhook_events_total{"), "{text}");
    assert!(text.contains("celery_queue_size{"), "{text}");
    running.stop.cancel();
    running.served.await.unwrap().unwrap();
}
