//! Reporting back on the pull request (issue 17) against a wiremock GitHub: the exact calls from
//! a delivery to a finished Codegen run (check run created queued, in progress, its
//! `details_url` set, completed), a failing run, GitHub failing while reporting (the task
//! completes all the same; the report is retried), and the commit-status fallback of a token.
//! The engine and the reporter are stepped by hand, with a manual clock.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use orchestrator_codegen::handlers::register_handlers;
use orchestrator_codegen::{
    CodegenClient, GitHubAppConfig, GitHubClient, GitHubConfig, HandlerConfig, Secret,
};
use orchestrator_core::clock::{Clock, ManualClock};
use orchestrator_core::engine::{Ingestor, SupersedeConfig, Worker, WorkerConfig};
use orchestrator_core::handler::HandlerRegistry;
use orchestrator_core::memory::MemoryStore;
use orchestrator_core::queue::StoreQueue;
use orchestrator_core::report::{ReportConfig, ReportMode, Reporter, TickSummary};
use orchestrator_core::routing::{OwnChecks, ReportButtonsRule, Router};
use orchestrator_core::signature::{SignatureVerifier, WebhookSecret};
use orchestrator_core::store::TaskStore;
use orchestrator_core::task::TaskStatus;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Recorder, TEST_APP_KEY, clock_now, codegen_config, github_config};

const SECRET: &str = "report-secret";
const REPO: &str = "/repos/Codertocat/Hello-World";
const SHA: &str = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";
const RUN_URL: &str = "https://codegen.com/agent/trace/900";

fn corpus(file: &str) -> Vec<u8> {
    let dir = std::env::var_os("WEBHOOK_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    std::fs::read(dir.join("github-payloads").join(file)).expect("corpus (WEBHOOK_CORPUS_DIR)")
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
    map
}

/// The default rules, with our own checks (App 7) kept away from them and their buttons on.
fn report_router() -> Router {
    let own = OwnChecks {
        check_name: "webhook-orchestrator".into(),
        app_id: Some(7),
    };
    let mut router = Router::with_default_rules();
    router.ignore_own_checks(own.clone());
    router.add(ReportButtonsRule { own });
    router
}

/// A store, engine and reporter against wiremock GitHub and Codegen servers.
struct Rig {
    client: Arc<GitHubClient>,
    github: MockServer,
    codegen: MockServer,
    store: Arc<MemoryStore>,
    ingestor: Ingestor,
    worker: Worker,
    reporter: Reporter,
    clock: Arc<ManualClock>,
    recorder: Arc<Recorder>,
}

impl Rig {
    /// `app`: a GitHub App (check runs); otherwise a token (commit statuses).
    async fn new(app: bool, run_status: &str) -> Self {
        Self::build(app, run_status, false).await
    }

    /// [`Rig::new`], with `pr_comment` (`REPORT_PR_COMMENT`).
    async fn build(app: bool, run_status: &str, pr_comment: bool) -> Self {
        Self::build_with(app, run_status, pr_comment, HandlerConfig::default(), false).await
    }

    /// [`Rig::build`] with the handlers' `config`, and `supersede` (stale pull-request work
    /// cancelled at ingest, as the server does by default).
    async fn build_with(
        app: bool,
        run_status: &str,
        pr_comment: bool,
        handler_config: HandlerConfig,
        supersede: bool,
    ) -> Self {
        let github = MockServer::start().await;
        let codegen = MockServer::start().await;
        let expires_at = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
        Mock::given(method("POST"))
            .and(path("/app/installations/1/access_tokens"))
            .respond_with(
                ResponseTemplate::new(201)
                    .set_body_json(json!({"token": "ghs_inst1", "expires_at": expires_at})),
            )
            .mount(&github)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("{REPO}/pulls/2/files")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([
                {"filename": "src/lib.rs", "status": "modified", "additions": 12, "deletions": 3, "changes": 15}])))
            .mount(&github)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/organizations/42/agent/run"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"id": 900, "status": "PENDING", "web_url": RUN_URL})),
            )
            .mount(&codegen)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/organizations/42/agent/run/900"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 900,
                "status": run_status, "web_url": RUN_URL, "summary": "the agent's summary"})))
            .mount(&codegen)
            .await;
        let clock = clock_now();
        let recorder = Arc::new(Recorder::default());
        let config = if app {
            GitHubConfig {
                token: None,
                app: Some(GitHubAppConfig {
                    app_id: 7,
                    private_key_pem: Secret::new(TEST_APP_KEY),
                }),
                ..github_config(&github)
            }
        } else {
            github_config(&github)
        };
        let client = Arc::new(GitHubClient::new(config, clock.clone(), recorder.clone()).unwrap());
        let agent =
            CodegenClient::new(codegen_config(&codegen), clock.clone(), recorder.clone()).unwrap();
        let store = Arc::new(MemoryStore::new());
        let mut registry = HandlerRegistry::new();
        register_handlers(
            &mut registry,
            client.clone(),
            Arc::new(agent),
            store.clone(),
            handler_config,
            recorder.clone(),
        );
        let mut ingestor = Ingestor::new(
            SignatureVerifier::new([WebhookSecret::new(SECRET)]),
            report_router(),
            store.clone(),
            Arc::new(StoreQueue::new(store.clone())),
            clock.clone(),
        );
        if supersede {
            ingestor = ingestor.with_supersede(SupersedeConfig::default());
        }
        let worker = Worker::new(
            Arc::new(StoreQueue::new(store.clone())),
            store.clone(),
            registry,
            clock.clone(),
            WorkerConfig::default(),
        );
        let mode = if app {
            ReportMode::Checks
        } else {
            ReportMode::Statuses
        };
        let client_for_rig = client.clone();
        let reporter = Reporter::new(
            store.clone(),
            store.clone(),
            client,
            recorder.clone(),
            ReportConfig {
                mode,
                pr_comment,
                ..ReportConfig::default()
            },
            "test-reporter",
        );
        Self {
            client: client_for_rig,
            github,
            codegen,
            store,
            ingestor,
            worker,
            reporter,
            clock,
            recorder,
        }
    }

    /// The check-run create answers id 555; its edits answer 200.
    async fn accept_check_runs(&self) {
        Mock::given(method("POST"))
            .and(path(format!("{REPO}/check-runs")))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 555})))
            .mount(&self.github)
            .await;
        Mock::given(method("PATCH"))
            .and(path(format!("{REPO}/check-runs/555")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 555})))
            .mount(&self.github)
            .await;
    }

    async fn deliver_opened(&self) -> Uuid {
        let body = corpus("pull_request/opened.payload.json");
        let receipt = self
            .ingestor
            .ingest(
                &headers("pull_request", "d-1", &body),
                Bytes::from(body),
                None,
            )
            .await
            .unwrap();
        receipt.task_ids[0]
    }

    async fn tick(&self) -> TickSummary {
        self.reporter.tick(self.clock.now()).await.unwrap()
    }

    /// The reporting calls GitHub received, in order: (method, path, body).
    async fn reports(&self) -> Vec<(String, String, Value)> {
        self.github
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| {
                let p = r.url.path();
                r.method.as_str() != "GET"
                    && (p.contains("/check-runs") || p.contains("/statuses/"))
            })
            .map(|r| {
                let body = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                (r.method.to_string(), r.url.path().to_owned(), body)
            })
            .collect()
    }

    /// Runs the analysis, then the trigger (the run is created), then, 30 s later, the read
    /// that finds the run's end; the reporter ticks after each step.
    async fn run_through(&self) {
        assert_eq!(self.worker.run_once().await.unwrap(), 1, "the analysis ran");
        self.tick().await;
        assert_eq!(
            self.worker.run_once().await.unwrap(),
            1,
            "the run was created"
        );
        self.tick().await;
        self.clock.advance(Duration::from_secs(30));
        assert_eq!(self.worker.run_once().await.unwrap(), 1, "the run was read");
        self.tick().await;
    }
}

/// (method, path, status, conclusion, details_url) of one reporting call.
type Call<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

fn summary(body: &Value) -> &str {
    body["output"]["summary"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_pull_request_is_reported_from_delivery_to_a_finished_codegen_run() {
    let rig = Rig::new(true, "COMPLETE").await;
    rig.accept_check_runs().await;
    let analysis = rig.deliver_opened().await;
    let first = rig.tick().await;
    assert_eq!((first.sent, first.failed), (1, 0));
    assert_eq!(rig.tick().await.sent, 0, "nothing changed: nothing sent");
    rig.run_through().await;

    let calls = rig.reports().await;
    let shape: Vec<Call<'_>> = calls
        .iter()
        .map(|(m, p, b)| {
            (
                m.as_str(),
                p.as_str(),
                b["status"].as_str(),
                b["conclusion"].as_str(),
                b["details_url"].as_str(),
            )
        })
        .collect();
    let create = format!("{REPO}/check-runs");
    let edit = format!("{REPO}/check-runs/555");
    assert_eq!(
        shape,
        vec![
            ("POST", create.as_str(), Some("queued"), None, None),
            ("PATCH", edit.as_str(), Some("in_progress"), None, None),
            (
                "PATCH",
                edit.as_str(),
                Some("in_progress"),
                None,
                Some(RUN_URL)
            ),
            (
                "PATCH",
                edit.as_str(),
                Some("completed"),
                Some("success"),
                Some(RUN_URL)
            ),
        ]
    );
    let created = &calls[0].2;
    assert_eq!(created["name"], "webhook-orchestrator");
    assert_eq!(created["head_sha"], SHA);
    assert_eq!(created["external_id"], analysis.to_string());
    assert_eq!(created["output"]["title"], "Queued for analysis");
    assert!(
        calls[1..]
            .iter()
            .all(|(_, _, b)| b.get("head_sha").is_none())
    );
    assert_eq!(calls[1].2["output"]["title"], "Codegen run requested");
    assert_eq!(calls[2].2["output"]["title"], "Codegen run in progress");
    let done = &calls[3].2;
    assert_eq!(done["output"]["title"], "Codegen run finished");
    let text = summary(done);
    assert!(text.contains("pull request #2 was `opened`"), "{text}");
    assert!(text.contains("`new_pr_with_code_changes`"), "{text}");
    assert!(text.contains(&format!("[run 900]({RUN_URL})")), "{text}");
    assert!(text.contains("**Result:** the agent's summary"), "{text}");
    let oks = rig.recorder.reports.lock().unwrap().clone();
    assert_eq!(oks.len(), 4);
    assert!(oks.iter().all(|(k, o)| k == "check_run" && o == "ok"));
    // The installation's token is used for the check runs too.
    let requests = rig.github.received_requests().await.unwrap();
    assert!(
        requests
            .iter()
            .filter(|r| r.url.path().contains("/check-runs"))
            .all(|r| r.headers.get("authorization").unwrap() == "Bearer ghs_inst1")
    );
}

#[tokio::test]
async fn a_failing_codegen_run_completes_the_check_with_failure() {
    let rig = Rig::new(true, "FAILED").await;
    rig.accept_check_runs().await;
    rig.deliver_opened().await;
    rig.tick().await;
    rig.run_through().await;
    let calls = rig.reports().await;
    let last = &calls.last().unwrap().2;
    assert_eq!(last["status"], "completed");
    assert_eq!(last["conclusion"], "failure");
    assert_eq!(last["details_url"], RUN_URL);
    assert_eq!(last["output"]["title"], "Codegen run failed");
    assert!(
        summary(last).contains("**Run status:** `FAILED`"),
        "{}",
        summary(last)
    );
}

#[tokio::test]
async fn several_changes_between_two_ticks_are_one_request_with_the_latest_state() {
    let rig = Rig::new(true, "COMPLETE").await;
    rig.accept_check_runs().await;
    rig.deliver_opened().await;
    // pending -> running -> completed (+ trigger) -> running -> waiting, then one tick.
    assert_eq!(rig.worker.run_once().await.unwrap(), 1);
    assert_eq!(rig.worker.run_once().await.unwrap(), 1);
    let tick = rig.tick().await;
    assert_eq!((tick.sent, tick.failed), (1, 0));
    let calls = rig.reports().await;
    assert_eq!(calls.len(), 1, "one create, with the latest state");
    assert_eq!(calls[0].0, "POST");
    assert_eq!(calls[0].2["status"], "in_progress");
    assert_eq!(calls[0].2["details_url"], RUN_URL);
}

#[tokio::test]
async fn github_failing_while_reporting_never_fails_the_task_and_the_report_is_retried() {
    let rig = Rig::new(true, "COMPLETE").await;
    // The first create is refused (403), the second meets a 502; then GitHub accepts.
    Mock::given(method("POST"))
        .and(path(format!("{REPO}/check-runs")))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"message": "Resource not accessible by integration"})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&rig.github)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{REPO}/check-runs")))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&rig.github)
        .await;
    rig.accept_check_runs().await;
    let analysis = rig.deliver_opened().await;
    assert_eq!(rig.tick().await.failed, 1, "403");
    assert_eq!(
        rig.worker.run_once().await.unwrap(),
        1,
        "the analysis runs all the same"
    );
    let task = rig.store.get_task(analysis).await.unwrap().unwrap().task;
    assert_eq!(task.status, TaskStatus::Completed);
    assert_eq!(rig.tick().await.sent, 0, "the retry waits for its back-off");
    rig.clock.advance(Duration::from_secs(6));
    assert_eq!(rig.tick().await.failed, 1, "502");
    rig.clock.advance(Duration::from_secs(11));
    let third = rig.tick().await;
    assert_eq!((third.sent, third.failed), (1, 0), "retried and accepted");
    let calls = rig.reports().await;
    assert_eq!(calls.len(), 3);
    assert_eq!(
        calls[2].2["status"], "in_progress",
        "the latest state, not the first one"
    );
    let seen = rig.recorder.reports.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            ("check_run".to_owned(), "failed".to_owned()),
            ("check_run".to_owned(), "failed".to_owned()),
            ("check_run".to_owned(), "ok".to_owned()),
        ]
    );
    // The run goes on and its end is reported on the created check run.
    rig.run_through_rest().await;
    let calls = rig.reports().await;
    assert_eq!(calls.last().unwrap().2["conclusion"], "success");
}

impl Rig {
    async fn run_through_rest(&self) {
        assert_eq!(
            self.worker.run_once().await.unwrap(),
            1,
            "the run was created"
        );
        self.clock.advance(Duration::from_secs(30));
        assert_eq!(self.worker.run_once().await.unwrap(), 1, "the run was read");
        self.tick().await;
    }
}

#[tokio::test]
async fn a_token_reports_commit_statuses_with_the_same_states() {
    let rig = Rig::new(false, "COMPLETE").await;
    Mock::given(method("POST"))
        .and(path(format!("{REPO}/statuses/{SHA}")))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .mount(&rig.github)
        .await;
    rig.deliver_opened().await;
    rig.tick().await;
    rig.run_through().await;
    let calls = rig.reports().await;
    let bodies: Vec<&Value> = calls.iter().map(|(_, _, b)| b).collect();
    assert_eq!(
        bodies,
        vec![
            &json!({"state": "pending", "context": "webhook-orchestrator", "description": "Queued for analysis"}),
            &json!({"state": "pending", "context": "webhook-orchestrator", "description": "Codegen run requested"}),
            &json!({"state": "pending", "context": "webhook-orchestrator", "description": "Codegen run in progress", "target_url": RUN_URL}),
            &json!({"state": "success", "context": "webhook-orchestrator", "description": "Codegen run finished", "target_url": RUN_URL}),
        ]
    );
    assert!(
        calls
            .iter()
            .all(|(m, p, _)| m == "POST" && p == &format!("{REPO}/statuses/{SHA}"))
    );
    let requests = rig.github.received_requests().await.unwrap();
    assert!(
        requests
            .iter()
            .filter(|r| r.url.path().contains("/statuses/"))
            .all(|r| r.headers.get("authorization").unwrap() == "Bearer ghp_testtoken")
    );
}

/// Our check run as GitHub sends it back: `action` on the completed check of PR 2 by App 7.
fn own_check_delivery(action: &str, conclusion: &str) -> Vec<u8> {
    let mut p: Value = serde_json::from_slice(&corpus("check_run/completed.payload.json")).unwrap();
    p["action"] = json!(action);
    p["check_run"]["id"] = json!(555);
    p["check_run"]["name"] = json!("webhook-orchestrator");
    p["check_run"]["app"]["id"] = json!(7);
    p["check_run"]["conclusion"] = json!(conclusion);
    p["installation"] = json!({"id": 1});
    serde_json::to_vec(&p).unwrap()
}

#[tokio::test]
async fn our_failed_check_starts_nothing_and_its_rerun_starts_exactly_one_fresh_analysis() {
    let rig = Rig::new(true, "FAILED").await;
    rig.accept_check_runs().await;
    rig.deliver_opened().await;
    rig.tick().await;
    rig.run_through().await;
    assert_eq!(
        rig.reports().await.last().unwrap().2["conclusion"],
        "failure"
    );

    // GitHub tells us about our own failed check: no analysis of it, no loop.
    let body = own_check_delivery("completed", "failure");
    let receipt = rig
        .ingestor
        .ingest(
            &headers("check_run", "d-own", &body),
            Bytes::from(body),
            None,
        )
        .await
        .unwrap();
    assert!(receipt.task_ids.is_empty(), "our own check was analysed");
    assert_eq!(rig.worker.run_once().await.unwrap(), 0);

    // "Re-run" on it: one fresh analysis of that commit, forced past the one-run-per-SHA limit.
    let body = own_check_delivery("rerequested", "failure");
    let receipt = rig
        .ingestor
        .ingest(
            &headers("check_run", "d-rerun", &body),
            Bytes::from(body),
            None,
        )
        .await
        .unwrap();
    assert_eq!(receipt.task_ids.len(), 1);
    let fresh = rig
        .store
        .get_task(receipt.task_ids[0])
        .await
        .unwrap()
        .unwrap()
        .task;
    assert_eq!(fresh.commit_sha.as_deref(), Some(SHA));
    let before = rig.reports().await.len();
    rig.run_through().await;
    let fresh = rig
        .store
        .get_task(fresh.task_id)
        .await
        .unwrap()
        .unwrap()
        .task;
    assert_eq!(fresh.status, TaskStatus::Completed);
    let calls = rig.reports().await;
    let new_calls = &calls[before..];
    assert_eq!(
        new_calls[0].0, "POST",
        "the fresh analysis has a check run of its own"
    );
    assert_eq!(new_calls[0].2["external_id"], fresh.task_id.to_string());
    let runs_created = rig
        .codegen
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .count();
    assert_eq!(runs_created, 2, "the re-run asked Codegen again (forced)");
}

#[tokio::test]
async fn the_pull_request_comment_is_created_once_and_edited_in_place() {
    let rig = Rig::build(true, "COMPLETE", true).await;
    rig.accept_check_runs().await;
    Mock::given(method("POST"))
        .and(path(format!("{REPO}/issues/2/comments")))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 77})))
        .mount(&rig.github)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("{REPO}/issues/comments/77")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 77})))
        .mount(&rig.github)
        .await;
    rig.deliver_opened().await;
    rig.tick().await;
    rig.tick().await;
    rig.run_through().await;
    let comments: Vec<(String, String, Value)> = rig
        .github
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path().contains("/comments"))
        .map(|r| {
            let body = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            (r.method.to_string(), r.url.path().to_owned(), body)
        })
        .collect();
    let methods: Vec<&str> = comments.iter().map(|(m, _, _)| m.as_str()).collect();
    assert_eq!(
        methods,
        ["POST", "PATCH", "PATCH", "PATCH"],
        "one comment, edited in place"
    );
    assert_eq!(comments[0].1, format!("{REPO}/issues/2/comments"));
    let last = comments[3].2["body"].as_str().unwrap();
    assert!(
        last.starts_with("<!-- webhook-orchestrator:report -->"),
        "{last}"
    );
    assert!(last.contains("**success**"), "{last}");
    assert!(
        last.contains(&format!("([Codegen run]({RUN_URL}))")),
        "{last}"
    );
    let first = comments[0].2["body"].as_str().unwrap();
    assert!(first.contains("**queued**"), "{first}");
    let seen = rig.recorder.reports.lock().unwrap().clone();
    assert_eq!(
        seen.iter()
            .filter(|(k, o)| k == "comment" && o == "ok")
            .count(),
        4
    );
}

#[tokio::test]
async fn a_second_reporter_waits_for_the_lease_and_takes_over_where_the_first_stopped() {
    let rig = Rig::new(true, "COMPLETE").await;
    rig.accept_check_runs().await;
    let other = Reporter::new(
        rig.store.clone(),
        rig.store.clone(),
        rig.client.clone(),
        rig.recorder.clone(),
        ReportConfig {
            mode: ReportMode::Checks,
            ..ReportConfig::default()
        },
        "another-process",
    );
    rig.deliver_opened().await;
    assert_eq!(rig.tick().await.sent, 1);
    let idle = other.tick(rig.clock.now()).await.unwrap();
    assert_eq!(
        (idle.leased, idle.sent),
        (false, 0),
        "one reporter at a time"
    );
    assert_eq!(rig.reports().await.len(), 1);

    // The first process is gone; after its lease the other one continues from the stored
    // cursor and edits the check run it created (no second create).
    rig.clock.advance(Duration::from_secs(31));
    assert_eq!(rig.worker.run_once().await.unwrap(), 1);
    let taken = other.tick(rig.clock.now()).await.unwrap();
    assert_eq!((taken.leased, taken.sent), (true, 1));
    let calls = rig.reports().await;
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[1].0.as_str(), calls[1].1.as_str()),
        ("PATCH", format!("{REPO}/check-runs/555").as_str())
    );
    assert!(!rig.tick().await.leased, "the first one waits now");
}

/// The newer head of the superseding delivery.
const NEW_SHA: &str = "1234567890abcdef1234567890abcdef12345678";

/// `pull_request.synchronize` of PR 2 to `NEW_SHA`, later than the corpus' `opened`.
fn synchronize_to_new_head() -> Vec<u8> {
    let mut p: Value = serde_json::from_slice(&corpus("pull_request/opened.payload.json")).unwrap();
    p["action"] = json!("synchronize");
    p["pull_request"]["head"]["sha"] = json!(NEW_SHA);
    p["pull_request"]["updated_at"] = json!("2030-01-01T00:00:00Z");
    p["installation"] = json!({"id": 1});
    serde_json::to_vec(&p).unwrap()
}

#[tokio::test]
async fn a_superseded_analysis_completes_its_check_cancelled_naming_the_newer_commit() {
    let rig = Rig::build_with(true, "COMPLETE", false, HandlerConfig::default(), true).await;
    // The old head's check run is 555, the new head's 556.
    for (sha, id) in [(SHA, 555), (NEW_SHA, 556)] {
        Mock::given(method("POST"))
            .and(path(format!("{REPO}/check-runs")))
            .and(body_partial_json(json!({"head_sha": sha})))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": id})))
            .mount(&rig.github)
            .await;
        Mock::given(method("PATCH"))
            .and(path(format!("{REPO}/check-runs/{id}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": id})))
            .mount(&rig.github)
            .await;
    }
    let old = rig.deliver_opened().await;
    assert_eq!(rig.tick().await.sent, 1, "the old head's check, queued");

    // A push to the pull request before the old analysis ran: it is superseded at ingest.
    let body = synchronize_to_new_head();
    let receipt = rig
        .ingestor
        .ingest(
            &headers("pull_request", "d-sync", &body),
            Bytes::from(body),
            None,
        )
        .await
        .unwrap();
    let new = receipt.task_ids[0];
    let stale = rig.store.get_task(old).await.unwrap().unwrap().task;
    assert_eq!(stale.status, TaskStatus::Cancelled);
    assert_eq!(stale.superseded_by, Some(new));
    let tick = rig.tick().await;
    assert_eq!((tick.sent, tick.failed), (2, 0));

    let calls = rig.reports().await;
    assert_eq!(calls.len(), 3, "{calls:#?}");
    let cancelled: Vec<&Value> = calls
        .iter()
        .filter(|(m, p, _)| m == "PATCH" && p == &format!("{REPO}/check-runs/555"))
        .map(|(_, _, b)| b)
        .collect();
    assert_eq!(cancelled.len(), 1, "{calls:#?}");
    let body = cancelled[0];
    let text = summary(body).to_owned();
    assert_eq!(
        body,
        &json!({
            "name": "webhook-orchestrator",
            "external_id": old.to_string(),
            "status": "completed",
            "conclusion": "cancelled",
            "output": {"title": "Superseded by 1234567", "summary": text},
            "actions": [],
        })
    );
    assert!(
        text.starts_with(&format!(
            "**Superseded by 1234567**\n\n**Superseded:** commit `{NEW_SHA}` was pushed to this \
             pull request; it is analysed instead\n**Why analysed:** pull request #2 was `opened`"
        )),
        "{text}"
    );
    assert!(
        text.ends_with(&format!("<sub>task `{old}`</sub>")),
        "{text}"
    );
    // The new head has a check run of its own.
    let created: Vec<&Value> = calls
        .iter()
        .filter(|(m, _, _)| m == "POST")
        .map(|(_, _, b)| b)
        .collect();
    assert_eq!(created.len(), 2);
    assert_eq!(created[1]["head_sha"], NEW_SHA);
    assert_eq!(created[1]["external_id"], new.to_string());
    assert_eq!(created[1]["status"], "queued");
    // Nothing more is owed for the old head.
    assert_eq!(rig.tick().await.sent, 0);
}

/// A check of someone else's App failed on PR 2 (the corpus' `completed` run, concluded
/// `failure`), as GitHub sends it and as the analysis reads it back.
async fn failed_lint(rig: &Rig) -> Vec<u8> {
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/check-runs/128620228")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 128620228, "name": "Octocoders-linter", "status": "completed",
            "conclusion": "failure", "head_sha": SHA,
            "html_url": "https://github.com/Codertocat/Hello-World/runs/128620228",
            "output": {"title": "2 lint errors", "summary": "src/lib.rs: unused import"}})))
        .mount(&rig.github)
        .await;
    let mut p: Value = serde_json::from_slice(&corpus("check_run/completed.payload.json")).unwrap();
    p["check_run"]["conclusion"] = json!("failure");
    p["installation"] = json!({"id": 1});
    serde_json::to_vec(&p).unwrap()
}

/// "Ask Codegen to fix" pressed on our check 555, which reports `analysis`.
fn ask_codegen_pressed(analysis: Uuid) -> Vec<u8> {
    let mut p: Value =
        serde_json::from_slice(&own_check_delivery("requested_action", "action_required")).unwrap();
    p["check_run"]["name"] = json!("webhook-orchestrator / Octocoders-linter");
    p["check_run"]["external_id"] = json!(analysis.to_string());
    p["requested_action"] = json!({"identifier": "codegen_fix"});
    serde_json::to_vec(&p).unwrap()
}

fn codegen_runs_created(requests: &[wiremock::Request]) -> usize {
    requests
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path().ends_with("/agent/run"))
        .count()
}

#[tokio::test]
async fn with_automatic_runs_off_a_failed_check_waits_for_the_button_that_starts_exactly_one_run() {
    let handlers = HandlerConfig {
        manual_fix_repos: vec!["codertocat/hello-world".into()],
        ..HandlerConfig::default()
    };
    let rig = Rig::build_with(true, "COMPLETE", false, handlers, false).await;
    rig.accept_check_runs().await;
    let body = failed_lint(&rig).await;
    let receipt = rig
        .ingestor
        .ingest(
            &headers("check_run", "d-lint", &body),
            Bytes::from(body),
            None,
        )
        .await
        .unwrap();
    assert_eq!(receipt.task_ids.len(), 1);
    let analysis = receipt.task_ids[0];
    assert_eq!(rig.worker.run_once().await.unwrap(), 1, "the analysis ran");
    assert_eq!(
        rig.worker.run_once().await.unwrap(),
        0,
        "and asked for no run"
    );
    let done = rig.store.get_task(analysis).await.unwrap().unwrap().task;
    assert_eq!(done.status, TaskStatus::Completed);
    let output = done.output_data.unwrap();
    assert_eq!(output["should_trigger_codegen"], true);
    assert_eq!(output["codegen_on_request"], true);
    rig.tick().await;
    let calls = rig.reports().await;
    assert_eq!(calls.len(), 1);
    let (m, p, created) = &calls[0];
    assert_eq!(
        (m.as_str(), p.as_str()),
        ("POST", format!("{REPO}/check-runs").as_str())
    );
    let text = summary(created).to_owned();
    assert_eq!(
        created,
        &json!({
            "name": "webhook-orchestrator / Octocoders-linter",
            "head_sha": SHA,
            "external_id": analysis.to_string(),
            "status": "completed",
            "conclusion": "action_required",
            "output": {"title": "Waiting for Ask Codegen to fix", "summary": text},
            "actions": [{"label": "Ask Codegen to fix",
                         "description": "Start a Codegen run for this failure",
                         "identifier": "codegen_fix"}],
        })
    );
    assert!(
        text.contains(
            "**Why analysed:** check `Octocoders-linter` concluded `failure` on pull request #2"
        ),
        "{text}"
    );
    assert!(text.contains("**Reasons:** `lint_failure`"), "{text}");
    assert!(
        text.contains("Automatic Codegen runs are off for this repository"),
        "{text}"
    );
    let codegen_calls = rig.codegen.received_requests().await.unwrap();
    assert_eq!(codegen_runs_created(&codegen_calls), 0, "no automatic run");

    // The button: one forced `codegen_trigger`, the analysis' follow-up.
    let body = ask_codegen_pressed(analysis);
    let receipt = rig
        .ingestor
        .ingest(
            &headers("check_run", "d-ask", &body),
            Bytes::from(body),
            None,
        )
        .await
        .unwrap();
    assert_eq!(receipt.task_ids.len(), 1);
    let trigger = rig
        .store
        .get_task(receipt.task_ids[0])
        .await
        .unwrap()
        .unwrap()
        .task;
    assert_eq!(trigger.task_type.as_str(), "codegen_trigger");
    assert_eq!(trigger.parent_task_id, Some(analysis));
    assert_eq!(trigger.commit_sha.as_deref(), Some(SHA));
    rig.tick().await;
    assert_eq!(
        rig.worker.run_once().await.unwrap(),
        1,
        "the run was created"
    );
    rig.tick().await;
    rig.clock.advance(Duration::from_secs(30));
    assert_eq!(rig.worker.run_once().await.unwrap(), 1, "the run was read");
    rig.tick().await;

    let calls = rig.reports().await;
    let edit = format!("{REPO}/check-runs/555");
    let shape: Vec<Call<'_>> = calls[1..]
        .iter()
        .map(|(m, p, b)| {
            (
                m.as_str(),
                p.as_str(),
                b["status"].as_str(),
                b["conclusion"].as_str(),
                b["details_url"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            ("PATCH", edit.as_str(), Some("in_progress"), None, None),
            (
                "PATCH",
                edit.as_str(),
                Some("in_progress"),
                None,
                Some(RUN_URL)
            ),
            (
                "PATCH",
                edit.as_str(),
                Some("completed"),
                Some("success"),
                Some(RUN_URL)
            ),
        ],
        "the same check run follows the run; {calls:#?}"
    );
    assert_eq!(calls[1].2["output"]["title"], "Codegen run requested");
    assert!(
        calls[1..].iter().all(|(_, _, b)| b["actions"] == json!([])),
        "the button is gone once pressed"
    );
    assert_eq!(calls[3].2["output"]["title"], "Codegen run finished");
    let codegen_calls = rig.codegen.received_requests().await.unwrap();
    assert_eq!(codegen_runs_created(&codegen_calls), 1, "exactly one run");
    let prompt = serde_json::from_slice::<Value>(&codegen_calls[0].body).unwrap();
    assert!(
        prompt["prompt"].as_str().is_some_and(|p| !p.is_empty()),
        "{prompt}"
    );
}

/// The README's "What PR authors see" shows a check run's summary; it is the one this flow
/// produces (the task id aside).
#[tokio::test]
async fn the_readme_example_summary_is_what_the_reporter_sends() {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let section = readme
        .split("## What PR authors see")
        .nth(1)
        .expect("the README has the section");
    let example = section
        .split("```markdown\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("an example summary in the section");
    let rig = Rig::new(true, "COMPLETE").await;
    rig.accept_check_runs().await;
    let analysis = rig.deliver_opened().await;
    rig.tick().await;
    rig.run_through().await;
    let calls = rig.reports().await;
    let sent = summary(&calls.last().unwrap().2).to_owned();
    assert_eq!(
        format!("{sent}\n"),
        example.replace("0193a4c2-…", &analysis.to_string()),
        "README example vs sent summary"
    );
}
