//! The reconciler over the in-memory store and an in-memory delivery log, on a manual clock:
//! GUID grouping, relevance, both modes, dry runs, resuming from the cursor after a limit,
//! windows of scheduled runs, learned hooks, one runner at a time, and bad requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue};
use orchestrator_core::clock::{Clock, ManualClock};
use orchestrator_core::engine::Ingestor;
use orchestrator_core::error::{ClientError, ClientErrorKind};
use orchestrator_core::memory::MemoryStore;
use orchestrator_core::queue::StoreQueue;
use orchestrator_core::recovery::memory::FakeDeliveryLog;
use orchestrator_core::recovery::{
    DeliverySummary, HookRef, Reconciler, RecoveryConfig, RequestError, RunRequest, RunRequestError,
};
use orchestrator_core::routing::{EventRule, Router};
use orchestrator_core::signature::{SignatureVerifier, WebhookSecret};
use orchestrator_core::store::recovery::{RecoveryMode, RecoveryStore, RunStatus};
use orchestrator_core::store::{EventFilter, EventStore, Page, TaskFilter, TaskStore};
use orchestrator_core::task::TaskType;
use serde_json::json;

struct Setup {
    clock: Arc<ManualClock>,
    store: Arc<MemoryStore>,
    log: Arc<FakeDeliveryLog>,
    ingestor: Arc<Ingestor>,
}

fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

fn minutes_ago(clock: &ManualClock, m: i64) -> DateTime<Utc> {
    clock.now() - chrono::Duration::minutes(m)
}

fn setup(page_size: usize) -> Setup {
    let clock = Arc::new(ManualClock::new(start()));
    let store = Arc::new(MemoryStore::new());
    let router = Router::empty().with_rule(EventRule::new(
        "issues",
        "issues",
        TaskType::new("analyze").unwrap(),
    ));
    let ingestor = Arc::new(Ingestor::new(
        SignatureVerifier::new([WebhookSecret::new("s3cret")]),
        router,
        store.clone(),
        Arc::new(StoreQueue::new(store.clone())),
        clock.clone(),
    ));
    Setup {
        clock,
        store,
        log: Arc::new(FakeDeliveryLog::new(page_size)),
        ingestor,
    }
}

fn hook() -> HookRef {
    "repo:octo/repo:42".parse().unwrap()
}

fn config() -> RecoveryConfig {
    RecoveryConfig {
        hooks: "repo:octo/repo:42".parse().unwrap(),
        ..RecoveryConfig::default()
    }
}

impl Setup {
    fn reconciler(&self, config: RecoveryConfig) -> Reconciler {
        Reconciler::new(
            self.log.clone(),
            self.store.clone(),
            self.ingestor.clone(),
            self.clock.clone(),
            config,
        )
    }

    /// Adds an attempt `minutes` ago (call oldest first).
    fn attempt(&self, id: i64, guid: &str, minutes: i64, code: u16, event: &str) {
        let summary = DeliverySummary {
            id,
            guid: guid.into(),
            delivered_at: minutes_ago(&self.clock, minutes),
            redelivery: false,
            status: if code == 200 { "OK" } else { "failed" }.into(),
            status_code: code,
            event: event.into(),
            action: Some("opened".into()),
            installation_id: None,
            repository_id: None,
            throttled_at: None,
        };
        let headers = vec![
            ("X-GitHub-Delivery".to_owned(), guid.to_owned()),
            ("X-GitHub-Event".to_owned(), event.to_owned()),
            ("X-GitHub-Hook-ID".to_owned(), "42".to_owned()),
            (
                "X-GitHub-Hook-Installation-Target-Type".to_owned(),
                "repository".to_owned(),
            ),
            (
                "Content-Type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            ),
        ];
        let payload = json!({"action": "opened", "repository": {"full_name": "octo/repo"}});
        self.log.push(&hook(), summary, headers, payload);
    }

    /// Stores `guid` as if our receiver had got it.
    async fn store_live(&self, guid: &str) {
        let body = br#"{"action":"opened","repository":{"full_name":"octo/repo"}}"#;
        let mut h = HeaderMap::new();
        h.insert("x-github-delivery", HeaderValue::from_str(guid).unwrap());
        h.insert("x-github-event", HeaderValue::from_static("issues"));
        h.insert("x-github-hook-id", HeaderValue::from_static("42"));
        h.insert(
            "x-github-hook-installation-target-type",
            HeaderValue::from_static("repository"),
        );
        let sig = SignatureVerifier::new([WebhookSecret::new("s3cret")])
            .sign(body)
            .unwrap();
        h.insert("x-hub-signature-256", HeaderValue::from_str(&sig).unwrap());
        self.ingestor
            .ingest(&h, Bytes::from_static(body), None)
            .await
            .unwrap();
    }

    async fn guids(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let page = Page {
            limit: 1000,
            offset: 0,
        };
        for e in self
            .store
            .list_events(&EventFilter::default(), page)
            .await
            .unwrap()
        {
            let event = self.store.get_event(e.id).await.unwrap().unwrap();
            out.push((event.delivery_id, event.source));
        }
        out.sort();
        out
    }
}

fn rate_limited() -> ClientError {
    ClientError::new(
        ClientErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(60)),
        },
        Some(403),
        "secondary rate limit",
    )
}

#[tokio::test]
async fn missing_relevant_guids_are_fetched_and_stored_as_recovered_with_their_tasks() {
    let s = setup(2);
    s.attempt(1, "failed-then-ok", 50, 502, "issues");
    s.attempt(2, "failed-only", 40, 502, "issues");
    s.attempt(3, "ok-but-lost", 30, 200, "issues");
    s.attempt(4, "irrelevant", 25, 502, "ping");
    s.attempt(5, "failed-then-ok", 20, 200, "issues"); // the OK redelivery
    s.attempt(6, "stored", 10, 200, "issues");
    s.store_live("failed-then-ok").await;
    s.store_live("stored").await;

    let runs = s.reconciler(config()).tick(true).await.unwrap().unwrap();

    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!((run.listed, run.missing, run.recovered), (6, 2, 2));
    assert_eq!(run.missing_guids, ["ok-but-lost", "failed-only"]);
    assert_eq!(
        s.guids().await,
        [
            ("failed-only".to_owned(), "recovered".to_owned()),
            ("failed-then-ok".to_owned(), "github".to_owned()),
            ("ok-but-lost".to_owned(), "recovered".to_owned()),
            ("stored".to_owned(), "github".to_owned()),
        ]
    );
    // Recovered events got their tasks through the normal path: 4 events, 4 tasks.
    let tasks = s
        .store
        .list_tasks(&TaskFilter::default(), Page::default())
        .await
        .unwrap();
    assert_eq!(tasks.len(), 4);
    // Pages of two: three list calls, two fetches, no redelivery.
    let calls = s.log.calls();
    assert_eq!(calls.iter().filter(|c| c.starts_with("list")).count(), 3);
    assert_eq!(calls.iter().filter(|c| c.starts_with("get")).count(), 2);
    assert!(!calls.iter().any(|c| c.starts_with("redeliver")));
    // The recovered event keeps the hook it came from in its headers.
    let recovered = s
        .store
        .list_events(&EventFilter::default(), Page::default())
        .await
        .unwrap();
    let id = recovered
        .iter()
        .find(|e| e.delivery_id == "failed-only")
        .unwrap()
        .id;
    let event = s.store.get_event(id).await.unwrap().unwrap();
    assert!(
        event
            .headers
            .contains(&("x-github-hook-id".to_owned(), "42".to_owned()))
    );
}

#[tokio::test]
async fn redeliver_mode_asks_github_and_stores_nothing_itself() {
    let s = setup(100);
    s.attempt(1, "a", 30, 502, "issues");
    s.attempt(2, "a", 20, 502, "issues");
    s.attempt(3, "b", 10, 502, "issues");
    let config = RecoveryConfig {
        mode: RecoveryMode::Redeliver,
        ..config()
    };
    let runs = s.reconciler(config).tick(true).await.unwrap().unwrap();
    assert_eq!(runs[0].recovered, 2);
    // One redelivery per GUID (its newest attempt), never a fetch.
    let calls: Vec<String> = s
        .log
        .calls()
        .into_iter()
        .filter(|c| !c.starts_with("list"))
        .collect();
    assert_eq!(
        calls,
        [
            "redeliver repo:octo/repo:42 3",
            "redeliver repo:octo/repo:42 2"
        ]
    );
    assert!(s.guids().await.is_empty());
}

#[tokio::test]
async fn a_dry_run_lists_missing_guids_and_changes_nothing() {
    let s = setup(100);
    s.attempt(1, "a", 30, 502, "issues");
    s.attempt(2, "b", 10, 200, "issues");
    let reconciler = s.reconciler(config());
    let run = reconciler
        .request_run(RunRequest {
            dry_run: true,
            ..RunRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Pending);
    reconciler.tick(false).await.unwrap();
    let run = s.store.get_run(run.run_id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.missing_guids, ["b", "a"]);
    assert_eq!(run.recovered, 0);
    assert!(s.guids().await.is_empty());
    assert!(s.log.calls().iter().all(|c| c.starts_with("list")));
    // A dry run is not the "last success" a scheduled window starts from.
    assert_eq!(s.store.last_success().await.unwrap(), None);
}

#[tokio::test]
async fn a_rate_limit_mid_run_interrupts_and_the_next_tick_resumes_from_the_cursor() {
    let s = setup(2);
    for (i, guid) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        s.attempt(i as i64 + 1, guid, 50 - i as i64 * 5, 502, "issues");
    }
    // list p1, get, get, list p2, then the first fetch of page 2 hits a secondary limit.
    s.log
        .fail_next([None, None, None, None, Some(rate_limited())]);
    let reconciler = s.reconciler(config());
    let runs = reconciler.tick(true).await.unwrap().unwrap();
    let run = &runs[0];
    assert_eq!(run.status, RunStatus::Interrupted);
    assert_eq!(run.recovered, 2);
    assert_eq!(run.cursor.as_deref(), Some("2"));
    assert_eq!(run.errors, 1);

    // The next tick resumes the same run from page 2, not from scratch.
    let runs = reconciler.tick(false).await.unwrap().unwrap();
    assert_eq!(runs[0].run_id, run.run_id);
    assert_eq!(runs[0].status, RunStatus::Succeeded);
    assert_eq!(runs[0].recovered, 5);
    let lists: Vec<String> = s
        .log
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("list"))
        .collect();
    assert_eq!(
        lists,
        [
            "list repo:octo/repo:42 -",
            "list repo:octo/repo:42 2",
            "list repo:octo/repo:42 2",
            "list repo:octo/repo:42 4",
        ]
    );
    assert_eq!(s.guids().await.len(), 5);
}

#[tokio::test]
async fn a_permanent_hook_error_fails_the_run_and_other_hooks_still_run() {
    let s = setup(100);
    s.attempt(1, "a", 10, 502, "issues");
    let forbidden = ClientError::new(ClientErrorKind::Permanent, Some(403), "no permission");
    s.log.fail_next([Some(forbidden)]);
    let config = RecoveryConfig {
        hooks: "org:octo:7,repo:octo/repo:42".parse().unwrap(),
        ..RecoveryConfig::default()
    };
    let runs = s.reconciler(config).tick(true).await.unwrap().unwrap();
    assert_eq!(runs[0].status, RunStatus::Failed);
    assert_eq!(runs[0].recovered, 1);
    assert!(
        runs[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("org:octo:7")
    );
}

#[tokio::test]
async fn scheduled_windows_start_24h_back_then_from_the_last_success_minus_the_overlap() {
    let s = setup(100);
    let reconciler = s.reconciler(config());
    let first = reconciler.tick(true).await.unwrap().unwrap().remove(0);
    assert_eq!(first.since, start() - chrono::Duration::hours(24));
    assert_eq!(first.until, start());

    s.clock.advance(Duration::from_secs(300));
    let second = reconciler.tick(true).await.unwrap().unwrap().remove(0);
    assert_eq!(second.since, start() - chrono::Duration::minutes(10));

    // After a long outage, the look-back is capped at 72 hours.
    s.clock.advance(Duration::from_secs(100 * 3600));
    let third = reconciler.tick(true).await.unwrap().unwrap().remove(0);
    assert_eq!(third.since, s.clock.now() - chrono::Duration::hours(72));
}

#[tokio::test]
async fn auto_learns_hooks_from_stored_deliveries_headers() {
    let s = setup(100);
    s.store_live("seen").await;
    s.attempt(1, "lost", 10, 502, "issues");
    let config = RecoveryConfig {
        hooks: "auto".parse().unwrap(),
        ..RecoveryConfig::default()
    };
    let runs = s.reconciler(config).tick(true).await.unwrap().unwrap();
    assert_eq!(runs[0].hooks, ["repo:octo/repo:42"]);
    assert_eq!(runs[0].recovered, 1);
}

#[tokio::test]
async fn one_runner_at_a_time() {
    let s = setup(100);
    let holder = s
        .store
        .try_lock_runner("other", Duration::from_secs(60), s.clock.now())
        .await
        .unwrap()
        .unwrap();
    let reconciler = s.reconciler(config());
    assert!(reconciler.tick(true).await.unwrap().is_none());
    drop(holder);
    assert!(reconciler.tick(true).await.unwrap().is_some());
}

#[tokio::test]
async fn a_live_delivery_after_its_recovery_is_a_duplicate() {
    let s = setup(100);
    s.attempt(1, "racer", 10, 502, "issues");
    s.reconciler(config()).tick(true).await.unwrap();
    s.store_live("racer").await;
    assert_eq!(
        s.guids().await,
        [("racer".to_owned(), "recovered".to_owned())]
    );
}

#[tokio::test]
async fn bad_requests_store_nothing() {
    let s = setup(100);
    let reconciler = s.reconciler(config());
    let now = s.clock.now();
    let inverted = reconciler
        .request_run(RunRequest {
            since: Some(now),
            until: Some(now - chrono::Duration::hours(1)),
            ..RunRequest::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(
        inverted,
        RunRequestError::Invalid(RequestError::InvertedWindow { .. })
    ));
    let no_hooks = s
        .reconciler(RecoveryConfig::default())
        .request_run(RunRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(
        no_hooks,
        RunRequestError::Invalid(RequestError::NoHooks)
    ));
    assert!(s.store.list_runs(None, 10).await.unwrap().is_empty());
}
