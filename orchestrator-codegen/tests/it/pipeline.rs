//! End to end through the core engine: a signed `pull_request.opened` delivery from the corpus is
//! ingested into the in-memory store, the worker runs `pull_request_analysis` (GitHub App auth,
//! files from wiremock), then the `codegen_trigger` follow-up starts one Codegen run, waits without
//! a worker slot, and stores the outcome; the run id lands on both tasks.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use orchestrator_codegen::{
    CodegenClient, GitHubAppConfig, GitHubClient, GitHubConfig, HandlerConfig, Secret,
    register_handlers,
};
use orchestrator_core::engine::{Ingestor, Worker, WorkerConfig};
use orchestrator_core::handler::HandlerRegistry;
use orchestrator_core::memory::MemoryStore;
use orchestrator_core::queue::StoreQueue;
use orchestrator_core::routing::Router;
use orchestrator_core::signature::{SignatureVerifier, WebhookSecret};
use orchestrator_core::store::{Page, TaskFilter, TaskStore};
use orchestrator_core::task::{TaskStatus, TaskType};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Recorder, TEST_APP_KEY, clock_now, codegen_config, github_config};

const SECRET: &str = "pipeline-secret";

fn corpus_dir() -> PathBuf {
    std::env::var_os("WEBHOOK_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"))
}

fn headers(event: &str, delivery: &str, body: &[u8]) -> HeaderMap {
    let signature = SignatureVerifier::new([WebhookSecret::new(SECRET)])
        .sign(body)
        .unwrap();
    let mut map = HeaderMap::new();
    map.insert("x-github-event", HeaderValue::from_str(event).unwrap());
    map.insert(
        "x-github-delivery",
        HeaderValue::from_str(delivery).unwrap(),
    );
    map.insert(
        "x-hub-signature-256",
        HeaderValue::from_str(&signature).unwrap(),
    );
    map.insert("content-type", HeaderValue::from_static("application/json"));
    map.insert(
        "user-agent",
        HeaderValue::from_static("GitHub-Hookshot/test"),
    );
    map
}

#[tokio::test]
async fn a_pull_request_delivery_ends_with_a_followed_agent_run() {
    let body = std::fs::read(corpus_dir().join("github-payloads/pull_request/opened.payload.json"))
        .expect("corpus payload (set WEBHOOK_CORPUS_DIR)");
    let github_server = MockServer::start().await;
    let codegen_server = MockServer::start().await;
    let expires_at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    Mock::given(method("POST"))
        .and(path("/app/installations/1/access_tokens"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"token": "ghs_inst1", "expires_at": expires_at})),
        )
        .expect(1)
        .mount(&github_server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/Codertocat/Hello-World/pulls/2/files"))
        .and(header("authorization", "Bearer ghs_inst1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"filename": "src/lib.rs", "status": "modified", "additions": 12, "deletions": 3, "changes": 15}])))
        .expect(1)
        .mount(&github_server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/organizations/42/agent/run"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 900, "status": "PENDING", "web_url": "https://codegen.com/agent/trace/900"})))
        .expect(1)
        .mount(&codegen_server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/organizations/42/agent/run/900"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 900, "status": "COMPLETE",
            "web_url": "https://codegen.com/agent/trace/900", "summary": "reviewed and fixed", "github_pull_requests": null})))
        .expect(1)
        .mount(&codegen_server)
        .await;

    let clock = clock_now();
    let recorder = Arc::new(Recorder::default());
    let github_config = GitHubConfig {
        token: None,
        app: Some(GitHubAppConfig {
            app_id: 7,
            private_key_pem: Secret::new(TEST_APP_KEY),
        }),
        ..github_config(&github_server)
    };
    let github = GitHubClient::new(github_config, clock.clone(), recorder.clone()).unwrap();
    let agent = CodegenClient::new(
        codegen_config(&codegen_server),
        clock.clone(),
        recorder.clone(),
    )
    .unwrap();
    let store = Arc::new(MemoryStore::new());
    let mut registry = HandlerRegistry::new();
    register_handlers(
        &mut registry,
        Arc::new(github),
        Arc::new(agent),
        store.clone(),
        HandlerConfig::default(),
        recorder.clone(),
    );
    assert_eq!(registry.task_types(), {
        let mut all = TaskType::BUILT_IN.to_vec();
        all.sort();
        all
    });

    let ingestor = Ingestor::new(
        SignatureVerifier::new([WebhookSecret::new(SECRET)]),
        Router::with_default_rules(),
        store.clone(),
        Arc::new(StoreQueue::new(store.clone())),
        clock.clone(),
    );
    let worker = Worker::new(
        Arc::new(StoreQueue::new(store.clone())),
        store.clone(),
        registry,
        clock.clone(),
        WorkerConfig::default(),
    );

    let receipt = ingestor
        .ingest(
            &headers("pull_request", "d-1", &body),
            Bytes::from(body.clone()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(receipt.task_ids.len(), 1);
    let analysis_id = receipt.task_ids[0];

    assert_eq!(worker.run_once().await.unwrap(), 1, "the analysis ran");
    let analysis = store.get_task(analysis_id).await.unwrap().unwrap().task;
    assert_eq!(analysis.status, TaskStatus::Completed);
    let output = analysis.output_data.clone().unwrap();
    assert_eq!(
        output["trigger_reasons"],
        json!(["new_pr_with_code_changes"])
    );

    assert_eq!(
        worker.run_once().await.unwrap(),
        1,
        "the trigger started the run"
    );
    let filter = TaskFilter {
        task_type: Some(TaskType::CODEGEN_TRIGGER),
        ..TaskFilter::default()
    };
    let triggers = store.list_tasks(&filter, Page::default()).await.unwrap();
    assert_eq!(triggers.len(), 1);
    let trigger = &triggers[0];
    assert_eq!(trigger.parent_task_id, Some(analysis_id));
    assert_eq!(trigger.webhook_event_id, analysis.webhook_event_id);
    assert_ne!(
        trigger.status,
        TaskStatus::Completed,
        "it waits for the run"
    );
    assert_eq!(trigger.codegen_task_id.as_deref(), Some("900"));
    let parent = store.get_task(analysis_id).await.unwrap().unwrap().task;
    assert_eq!(parent.codegen_task_id.as_deref(), Some("900"));
    assert_eq!(
        parent.codegen_task_url.as_deref(),
        Some("https://codegen.com/agent/trace/900")
    );

    assert_eq!(
        worker.run_once().await.unwrap(),
        0,
        "nothing is due while waiting"
    );
    clock.advance(Duration::from_secs(30));
    assert_eq!(
        worker.run_once().await.unwrap(),
        1,
        "the run was read again"
    );
    let trigger = store.get_task(trigger.task_id).await.unwrap().unwrap().task;
    assert_eq!(trigger.status, TaskStatus::Completed);
    let output = trigger.output_data.unwrap();
    assert_eq!(
        (output["status"].as_str(), output["summary"].as_str()),
        (Some("completed"), Some("reviewed and fixed"))
    );
    assert_eq!(recorder.runs(), ["created", "completed"]);
}
