//! Recovery runs (`RecoveryStore`) on PostgreSQL, SQLite and the in-memory reference store:
//! runs round-trip with their cursor and counters, the batched GUID look-up, hooks learned from
//! stored headers, one runner at a time, and the reconciler end to end (missing GUIDs fetched,
//! ingested as `recovered` with their tasks, a live delivery of the same GUID one row).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use orchestrator_core::clock::ManualClock;
use orchestrator_core::engine::Ingestor;
use orchestrator_core::queue::{StoreQueue, TaskQueue};
use orchestrator_core::recovery::memory::FakeDeliveryLog;
use orchestrator_core::recovery::{DeliverySummary, HookRef, Reconciler, RecoveryConfig};
use orchestrator_core::routing::{EventRule, Router};
use orchestrator_core::signature::{SignatureVerifier, WebhookSecret};
use orchestrator_core::store::recovery::{
    LearnedHook, RecoveryMode, RecoveryRun, RecoveryStore, RunStatus,
};
use orchestrator_core::store::{
    AttemptStore, EventFilter, EventStore, IngestOutcome, Page, TaskStore,
};
use orchestrator_core::task::TaskType;
use serde_json::json;
use uuid::Uuid;

use crate::support::{at, event};

/// What every store under test is.
pub trait Recoverable: RecoveryStore + EventStore + TaskStore + AttemptStore {}
impl<T: RecoveryStore + EventStore + TaskStore + AttemptStore> Recoverable for T {}

fn run(since: DateTime<Utc>, created: DateTime<Utc>) -> RecoveryRun {
    RecoveryRun {
        run_id: Uuid::now_v7(),
        trigger: "scheduled".into(),
        mode: RecoveryMode::Fetch,
        dry_run: false,
        hooks: vec!["app".into(), "repo:octo/repo:42".into()],
        since,
        until: created,
        status: RunStatus::Pending,
        hook: None,
        cursor: None,
        listed: 0,
        missing: 0,
        recovered: 0,
        failed: 0,
        errors: 0,
        last_error: None,
        missing_guids: Vec::new(),
        created_at: created,
        started_at: None,
        finished_at: None,
        updated_at: created,
    }
}

fn hooked(
    delivery: &str,
    hook: &str,
    target: &str,
    secs: i64,
) -> orchestrator_core::event::NewEvent {
    let mut e = event(delivery, "issues", at(secs));
    e.headers.push(("x-github-hook-id".into(), hook.into()));
    e.headers.push((
        "x-github-hook-installation-target-type".into(),
        target.into(),
    ));
    e.headers
        .push(("x-github-hook-installation-target-id".into(), "777".into()));
    e
}

pub async fn runs_round_trip_with_cursor_and_counters<S: Recoverable>(store: &S) {
    let mut first = run(at(0), at(10));
    store.create_run(&first).await.unwrap();
    let second = run(at(5), at(20));
    store.create_run(&second).await.unwrap();
    assert_eq!(store.get_run(first.run_id).await.unwrap().unwrap(), first);
    assert_eq!(
        store.open_run().await.unwrap().unwrap().run_id,
        first.run_id
    );

    first.status = RunStatus::Interrupted;
    first.hook = Some("repo:octo/repo:42".into());
    first.cursor = Some("v1_abc".into());
    first.listed = 250;
    first.missing = 3;
    first.recovered = 2;
    first.failed = 1;
    first.errors = 1;
    first.last_error = Some("secondary rate limit".into());
    first.missing_guids = vec!["g1".into(), "g2".into(), "g3".into()];
    first.started_at = Some(at(11));
    first.updated_at = at(12);
    store.save_run(&first).await.unwrap();
    assert_eq!(store.get_run(first.run_id).await.unwrap().unwrap(), first);

    let listed: Vec<Uuid> = store
        .list_runs(None, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(listed, [second.run_id, first.run_id]);
    // Keyset pages: after the newest, the older one; after the oldest, nothing.
    let page = |before| {
        let store = &store;
        async move {
            let runs = store.list_runs(Some(before), 10).await.unwrap();
            runs.iter().map(|r| r.run_id).collect::<Vec<_>>()
        }
    };
    assert_eq!(page(second.run_id).await, [first.run_id]);
    assert!(page(first.run_id).await.is_empty());
    assert_eq!(
        store.list_runs(None, 1).await.unwrap()[0].run_id,
        second.run_id
    );
    assert_eq!(store.last_success().await.unwrap(), None);

    first.status = RunStatus::Succeeded;
    first.finished_at = Some(at(13));
    store.save_run(&first).await.unwrap();
    assert_eq!(store.last_success().await.unwrap(), Some(at(11)));
    assert_eq!(
        store.open_run().await.unwrap().unwrap().run_id,
        second.run_id
    );
    assert_eq!(store.get_run(Uuid::now_v7()).await.unwrap(), None);
}

pub async fn known_deliveries_answers_a_whole_page_at_once<S: Recoverable>(store: &S) {
    for i in 0..150 {
        store
            .ingest(event(&format!("d-{i}"), "issues", at(i)), Vec::new())
            .await
            .unwrap();
    }
    let asked: Vec<String> = (100..200).map(|i| format!("d-{i}")).collect();
    let known = store.known_deliveries(&asked).await.unwrap();
    assert_eq!(known.len(), 50);
    assert!(known.contains("d-149") && !known.contains("d-150"));
    assert!(store.known_deliveries(&[]).await.unwrap().is_empty());
    // Odd GUIDs are data, never SQL.
    let odd = vec!["x' OR '1'='1".to_owned(), "\"]".to_owned()];
    assert!(store.known_deliveries(&odd).await.unwrap().is_empty());
}

pub async fn hooks_are_learned_from_stored_headers<S: Recoverable>(store: &S) {
    store
        .ingest(hooked("a", "42", "repository", 0), Vec::new())
        .await
        .unwrap();
    store
        .ingest(hooked("b", "42", "repository", 10), Vec::new())
        .await
        .unwrap();
    store
        .ingest(hooked("c", "9", "integration", 20), Vec::new())
        .await
        .unwrap();
    store
        .ingest(event("plain", "issues", at(30)), Vec::new())
        .await
        .unwrap();
    let hooks = store.learned_hooks(at(0)).await.unwrap();
    assert_eq!(
        hooks,
        [
            LearnedHook {
                hook_id: 9,
                target_type: Some("integration".into()),
                target_id: Some(777),
                repository: Some("octo/repo".into()),
            },
            LearnedHook {
                hook_id: 42,
                target_type: Some("repository".into()),
                target_id: Some(777),
                repository: Some("octo/repo".into()),
            },
        ]
    );
    // Only deliveries stored since the given time.
    assert_eq!(store.learned_hooks(at(15)).await.unwrap().len(), 1);
}

pub async fn one_runner_holds_the_lease<S: Recoverable>(store: &S) {
    let ttl = Duration::from_secs(600);
    let lease = store.try_lock_runner("one", ttl, at(0)).await.unwrap();
    assert!(lease.is_some());
    assert!(
        store
            .try_lock_runner("two", ttl, at(1))
            .await
            .unwrap()
            .is_none()
    );
    drop(lease);
    // Released in the background (closing a session, deleting a row): wait for it.
    let mut got = None;
    for _ in 0..50 {
        got = store.try_lock_runner("two", ttl, at(2)).await.unwrap();
        if got.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(got.is_some(), "the lease was never released");
}

pub fn summary(id: i64, guid: &str, delivered_at: DateTime<Utc>, code: u16) -> DeliverySummary {
    DeliverySummary {
        id,
        guid: guid.into(),
        delivered_at,
        redelivery: false,
        status: if code == 200 { "OK" } else { "failed" }.into(),
        status_code: code,
        event: "issues".into(),
        action: Some("opened".into()),
        installation_id: None,
        repository_id: None,
        throttled_at: None,
    }
}

pub async fn the_reconciler_recovers_missing_deliveries_with_their_tasks<S: Recoverable>(
    store: &Arc<S>,
) {
    let now = at(3600);
    let clock = Arc::new(ManualClock::new(now));
    let router = Router::empty().with_rule(EventRule::new(
        "issues",
        "issues",
        TaskType::new("analyze").unwrap(),
    ));
    let queue = Arc::new(StoreQueue::new(store.clone()));
    let ingestor = Arc::new(Ingestor::new(
        SignatureVerifier::new([WebhookSecret::new("s")]),
        router,
        store.clone(),
        queue.clone(),
        clock.clone(),
    ));
    let log = Arc::new(FakeDeliveryLog::new(2));
    let hook: HookRef = "repo:octo/repo:42".parse().unwrap();
    let payload = json!({"action": "opened", "repository": {"full_name": "octo/repo"}});
    for (id, guid, code) in [(1, "lost-a", 502), (2, "stored", 200), (3, "lost-b", 200)] {
        let headers = vec![
            ("X-GitHub-Delivery".into(), guid.into()),
            ("X-GitHub-Event".into(), "issues".into()),
            ("X-GitHub-Hook-ID".into(), "42".into()),
        ];
        log.push(
            &hook,
            summary(id, guid, at(id * 60), code),
            headers,
            payload.clone(),
        );
    }
    store
        .ingest(event("stored", "issues", at(120)), Vec::new())
        .await
        .unwrap();
    let config = RecoveryConfig {
        hooks: "repo:octo/repo:42".parse().unwrap(),
        ..RecoveryConfig::default()
    };
    let reconciler = Reconciler::new(log.clone(), store.clone(), ingestor, clock, config);
    let runs = reconciler.tick(true).await.unwrap().unwrap();
    assert_eq!(runs[0].status, RunStatus::Succeeded);
    assert_eq!(
        (runs[0].listed, runs[0].missing, runs[0].recovered),
        (3, 2, 2)
    );
    let stored = store.get_run(runs[0].run_id).await.unwrap().unwrap();
    assert_eq!(stored, runs[0]);

    let events = store
        .list_events(&EventFilter::default(), Page::default())
        .await
        .unwrap();
    assert_eq!(events.len(), 3);
    let recovered = events.iter().find(|e| e.delivery_id == "lost-a").unwrap();
    let detail = store.get_event(recovered.id).await.unwrap().unwrap();
    assert_eq!(detail.source, "recovered");
    assert!(
        detail
            .headers
            .contains(&("x-github-hook-id".into(), "42".into()))
    );
    // Its task runs like any other: the queue hands it out.
    let claims = queue
        .claim("w", 10, Duration::from_secs(30), now)
        .await
        .unwrap();
    assert_eq!(claims.len(), 2);

    // The live delivery of a recovered GUID arriving later stores nothing new.
    let late = store
        .ingest(event("lost-b", "issues", now), Vec::new())
        .await
        .unwrap();
    assert!(matches!(late, IngestOutcome::Duplicate { .. }));
}
