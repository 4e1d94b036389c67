//! Superseding through the [`Ingestor`] over the in-memory store behind group commit: a
//! delivery's pull-request updates are applied in the commit that stores it (the receipt's
//! tasks are already cancelled or not when it returns), a redelivery supersedes nothing,
//! `tasks_cancelled_total{reason}` counts each, and `SupersedeConfig::enabled = false` (or no
//! `with_supersede`) leaves stale work alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod corpus_support;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use orchestrator_core::clock::ManualClock;
use orchestrator_core::engine::{GroupCommit, Ingestor, Receipt, SupersedeConfig};
use orchestrator_core::memory::MemoryStore;
use orchestrator_core::observe::Observer;
use orchestrator_core::queue::StoreQueue;
use orchestrator_core::routing::Router;
use orchestrator_core::signature::{SignatureVerifier, WebhookSecret};
use orchestrator_core::store::TaskStore;
use orchestrator_core::task::{Task, TaskStatus};
use serde_json::Value;
use uuid::Uuid;

const SECRET: &str = "supersede-secret";

/// Counts `tasks_cancelled` by reason.
#[derive(Default)]
struct Cancelled(Mutex<Vec<(String, u64)>>);

impl Observer for Cancelled {
    fn tasks_cancelled(&self, reason: &str, count: u64) {
        self.0.lock().unwrap().push((reason.to_owned(), count));
    }
}

struct Harness {
    store: Arc<MemoryStore>,
    observer: Arc<Cancelled>,
    ingestor: Ingestor,
}

fn harness(supersede: Option<SupersedeConfig>) -> Harness {
    let store = Arc::new(MemoryStore::new());
    let observer = Arc::new(Cancelled::default());
    let ingestor = Ingestor::new(
        SignatureVerifier::new([WebhookSecret::new(SECRET)]),
        Router::with_default_rules(),
        Arc::new(GroupCommit::new(store.clone(), 1, 8)),
        Arc::new(StoreQueue::new(store.clone())),
        Arc::new(ManualClock::default()),
    )
    .with_observer(observer.clone());
    let ingestor = match supersede {
        Some(config) => ingestor.with_supersede(config),
        None => ingestor,
    };
    Harness {
        store,
        observer,
        ingestor,
    }
}

/// A `pull_request.<action>` delivery of pull request 7 at head `sha`, updated at `updated_at`.
fn pull_request(action: &str, sha: &str, updated_at: &str) -> Bytes {
    let raw = corpus_support::read("github-payloads/pull_request/synchronize.payload.json");
    let mut body: Value = serde_json::from_slice(&raw).unwrap();
    body["action"] = action.into();
    body["number"] = 7.into();
    body["pull_request"]["number"] = 7.into();
    body["pull_request"]["head"]["sha"] = sha.into();
    body["pull_request"]["updated_at"] = updated_at.into();
    Bytes::from(serde_json::to_vec(&body).unwrap())
}

impl Harness {
    async fn deliver(&self, delivery: &str, body: Bytes) -> Receipt {
        let mut headers = HeaderMap::new();
        headers.insert("x-github-event", HeaderValue::from_static("pull_request"));
        headers.insert(
            "x-github-delivery",
            HeaderValue::from_str(delivery).unwrap(),
        );
        let signature = SignatureVerifier::new([WebhookSecret::new(SECRET)])
            .sign(&body)
            .unwrap();
        headers.insert(
            "x-hub-signature-256",
            HeaderValue::from_str(&signature).unwrap(),
        );
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        self.ingestor.ingest(&headers, body, None).await.unwrap()
    }

    async fn task(&self, id: Uuid) -> Task {
        self.store.get_task(id).await.unwrap().unwrap().task
    }

    fn cancelled(&self) -> Vec<(String, u64)> {
        self.observer.0.lock().unwrap().clone()
    }
}

fn one(receipt: &Receipt) -> Uuid {
    assert_eq!(receipt.task_ids.len(), 1, "{receipt:?}");
    receipt.task_ids[0]
}

#[tokio::test]
async fn a_newer_head_supersedes_in_its_own_commit_and_a_redelivery_supersedes_nothing() {
    let h = harness(Some(SupersedeConfig::default()));
    let (a, b) = ("a".repeat(40), "b".repeat(40));
    let first = one(&h
        .deliver(
            "d-a",
            pull_request("synchronize", &a, "2026-11-30T10:00:00Z"),
        )
        .await);
    let second = one(&h
        .deliver(
            "d-b",
            pull_request("synchronize", &b, "2026-11-30T10:05:00Z"),
        )
        .await);
    // Done by the time the receipt is back: the same commit, no second transaction after it.
    let t = h.task(first).await;
    assert_eq!(
        (t.status, t.superseded_by),
        (TaskStatus::Cancelled, Some(second))
    );
    assert_eq!(h.cancelled(), [("superseded".to_owned(), 1)]);

    // A redelivery of head a (same delivery id, even with a newer time) is a duplicate: it
    // creates nothing and supersedes nothing.
    let again = h
        .deliver(
            "d-a",
            pull_request("synchronize", &a, "2026-11-30T11:00:00Z"),
        )
        .await;
    assert!(again.duplicate && again.task_ids.is_empty(), "{again:?}");
    assert_eq!(h.task(second).await.status, TaskStatus::Pending);
    assert_eq!(h.cancelled().len(), 1);

    // Closing the pull request cancels what is left (reason `closed`).
    let closed = h
        .deliver(
            "d-close",
            pull_request("closed", &b, "2026-11-30T10:10:00Z"),
        )
        .await;
    assert!(!closed.duplicate);
    assert_eq!(h.task(second).await.status, TaskStatus::Cancelled);
    assert_eq!(
        h.cancelled(),
        [("superseded".to_owned(), 1), ("closed".to_owned(), 1)]
    );
}

#[tokio::test]
async fn with_supersede_off_stale_work_stays() {
    for h in [
        harness(None),
        harness(Some(SupersedeConfig {
            enabled: false,
            running: false,
        })),
    ] {
        let first = one(&h
            .deliver(
                "d-a",
                pull_request("synchronize", "aaa", "2026-11-30T10:00:00Z"),
            )
            .await);
        one(&h
            .deliver(
                "d-b",
                pull_request("synchronize", "bbb", "2026-11-30T10:05:00Z"),
            )
            .await);
        h.deliver("d-c", pull_request("closed", "bbb", "2026-11-30T10:06:00Z"))
            .await;
        assert_eq!(h.task(first).await.status, TaskStatus::Pending);
        assert!(h.cancelled().is_empty());
    }
}
