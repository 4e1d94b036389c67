//! Bulk operations over the in-memory store: the strict request parser (properties), racing
//! retry operations, cancellation, and the runner's counts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use orchestrator_core::clock::{Clock, ManualClock};
use orchestrator_core::engine::{Ingestor, OperationRunner, OperationRunnerConfig};
use orchestrator_core::event::NewEvent;
use orchestrator_core::memory::MemoryStore;
use orchestrator_core::queue::StoreQueue;
use orchestrator_core::routing::Router;
use orchestrator_core::signature::{SignatureVerifier, WebhookSecret};
use orchestrator_core::store::operation::{
    CancelOperation, InvalidRequest, Operation, OperationFilter, OperationKind, OperationStatus,
    OperationStore, parse_request,
};
use orchestrator_core::store::{AttemptStore, EventStore, Finish, IngestOutcome, TaskStore};
use orchestrator_core::task::{NewTask, TaskSpec, TaskStatus, TaskType};
use proptest::prelude::*;
use uuid::Uuid;

// ---------------------------------------------------------------- the parser

fn filter_strategy() -> impl Strategy<Value = OperationFilter> {
    (
        proptest::option::of(prop_oneof![
            Just(TaskStatus::Failed),
            Just(TaskStatus::Cancelled)
        ]),
        proptest::option::of("[a-z_]{1,20}"),
        proptest::option::of("[a-z][a-z0-9]{0,10}/[a-z0-9]{1,10}"),
        proptest::option::of(1i64..100_000),
        proptest::option::of(".{1,20}"),
        proptest::option::of((0i64..2_000_000_000, 1i64..1_000_000)),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(
            |(status, task_type, repository, pr, error, range, superseded)| {
                let at = |s| Utc.timestamp_opt(s, 0).single().unwrap();
                OperationFilter {
                    status,
                    task_type: task_type.map(|t| TaskType::new(t).unwrap()),
                    repository,
                    pr_number: pr,
                    error_contains: error,
                    created_after: range.map(|(from, _)| at(from)),
                    created_before: range.map(|(from, len)| at(from + len)),
                    superseded,
                    ..OperationFilter::default()
                }
            },
        )
}

fn body_of(filter: &OperationFilter) -> serde_json::Value {
    let mut body = serde_json::to_value(filter).unwrap();
    if filter.is_empty() {
        body["all"] = true.into();
    }
    body
}

proptest! {
    /// Every valid filter, written as JSON, reads back as itself.
    #[test]
    fn valid_filters_round_trip(filter in filter_strategy(), dry_run in any::<bool>()) {
        let mut body = body_of(&filter);
        body["dry_run"] = dry_run.into();
        let request = parse_request(OperationKind::RetryTasks, body.to_string().as_bytes()).unwrap();
        prop_assert_eq!(request.filter, filter);
        prop_assert_eq!(request.dry_run, dry_run);
    }

    /// Any key the filter does not know makes the whole request invalid.
    #[test]
    fn an_unknown_key_is_refused(filter in filter_strategy(), key in "[a-z_]{1,12}") {
        let known = ["status", "task_type", "event_type", "action", "repository", "pr_number",
            "error_contains", "created_after", "created_before", "superseded", "all", "dry_run",
            "force"];
        prop_assume!(!known.contains(&key.as_str()));
        let mut body = body_of(&filter);
        body[key.as_str()] = 1.into();
        let err = parse_request(OperationKind::RetryTasks, body.to_string().as_bytes());
        prop_assert!(matches!(err, Err(InvalidRequest(ref m)) if m.contains("unknown field")));
    }

    /// `null` is never "no criterion": any key set to null refuses the request (with
    /// `"all": true` such a body would otherwise retry everything).
    #[test]
    fn a_null_value_is_refused(filter in filter_strategy(), key in prop_oneof![
        Just("status"), Just("task_type"), Just("repository"), Just("pr_number"),
        Just("error_contains"), Just("created_after"), Just("superseded"), Just("all"),
        Just("dry_run"), Just("force"),
    ]) {
        let mut body = body_of(&filter);
        body[key] = serde_json::Value::Null;
        for kind in [OperationKind::RetryTasks, OperationKind::ReprocessEvents] {
            let err = parse_request(kind, body.to_string().as_bytes());
            prop_assert!(matches!(err, Err(InvalidRequest(ref m)) if m.contains("must not be null")), "{:?}", err);
        }
    }

    /// A time range whose end is not after its start is refused.
    #[test]
    fn inverted_ranges_are_refused(from in 0i64..2_000_000_000, back in 0i64..1_000_000) {
        let at = |s| Utc.timestamp_opt(s, 0).single().unwrap().to_rfc3339();
        let body = serde_json::json!({"created_after": at(from), "created_before": at(from - back)});
        let result = parse_request(OperationKind::ReprocessEvents, body.to_string().as_bytes());
        prop_assert!(result.is_err());
    }

    /// Arbitrary bytes never panic the parser.
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_request(OperationKind::ReprocessEvents, &body);
        let _ = parse_request(OperationKind::RetryTasks, &body);
    }
}

// ---------------------------------------------------------------- the runner

const SECRET: &str = "It's a Secret to Everybody";

struct Setup {
    clock: Arc<ManualClock>,
    store: Arc<MemoryStore>,
    queue: Arc<StoreQueue<MemoryStore>>,
    ingestor: Arc<Ingestor>,
}

fn setup() -> Setup {
    let clock = Arc::new(ManualClock::default());
    let store = Arc::new(MemoryStore::new());
    let queue = Arc::new(StoreQueue::new(store.clone()));
    let ingestor = Arc::new(Ingestor::new(
        SignatureVerifier::new([WebhookSecret::new(SECRET)]),
        Router::empty(),
        store.clone(),
        queue.clone(),
        clock.clone(),
    ));
    Setup {
        clock,
        store,
        queue,
        ingestor,
    }
}

fn runner(s: &Setup, name: &str, batch_size: u32) -> OperationRunner {
    OperationRunner::new(
        s.store.clone(),
        s.ingestor.clone(),
        s.queue.clone(),
        s.clock.clone(),
        OperationRunnerConfig {
            worker_id: name.to_owned(),
            batch_size,
            lease: Duration::from_secs(60),
        },
    )
}

fn new_event(delivery: &str, at: DateTime<Utc>) -> NewEvent {
    NewEvent {
        delivery_id: delivery.to_owned(),
        event_type: "ping".to_owned(),
        action: None,
        source: "github".to_owned(),
        repository: Some("octo/repo".to_owned()),
        installation_id: None,
        payload: Bytes::from_static(br#"{"zen":"hi","hook_id":1}"#),
        headers: Vec::new(),
        received_at: at,
        parse_error: None,
    }
}

/// `n` tasks, each of its own event, all failed with "boom".
async fn failed_tasks(s: &Setup, n: usize) -> Vec<Uuid> {
    let now = s.clock.now();
    let mut ids = Vec::new();
    for i in 0..n {
        let mut spec = TaskSpec::new(TaskType::new("analyze").unwrap());
        spec.repository = Some("octo/repo".to_owned());
        let task = NewTask::new(spec, 0, now);
        let IngestOutcome::Accepted { task_ids, .. } = s
            .store
            .ingest(new_event(&format!("d-{i}"), now), vec![task])
            .await
            .unwrap()
        else {
            panic!("not accepted")
        };
        ids.extend(task_ids);
    }
    for _ in 0..n {
        let claim = s
            .store
            .claim_due("w", 1, now + chrono::Duration::seconds(60), now)
            .await
            .unwrap()
            .remove(0);
        let finish = Finish::Failed {
            error: "boom".to_owned(),
        };
        s.store.finish_attempt(&claim, finish, now).await.unwrap();
    }
    ids
}

async fn create(s: &Setup, kind: OperationKind, body: &str) -> Operation {
    let request = parse_request(kind, body.as_bytes()).unwrap();
    let now = s.clock.now();
    let preview = s
        .store
        .preview(kind, &request.filter, 0, now)
        .await
        .unwrap();
    let op = Operation::new(&request, preview.matched, now);
    s.store.create_operation(&op).await.unwrap();
    op
}

async fn attempts(s: &Setup, ids: &[Uuid]) -> Vec<TaskStatus> {
    let mut out = Vec::new();
    for id in ids {
        out.push(s.store.get_task(*id).await.unwrap().unwrap().task.status);
    }
    out
}

#[tokio::test]
async fn two_racing_retry_operations_retry_each_task_once() {
    let s = setup();
    let ids = failed_tasks(&s, 7).await;
    s.clock.advance(Duration::from_secs(1));
    let a = create(
        &s,
        OperationKind::RetryTasks,
        r#"{"error_contains":"boom"}"#,
    )
    .await;
    let b = create(&s, OperationKind::RetryTasks, r#"{"status":"failed"}"#).await;
    assert_eq!((a.matched, b.matched), (7, 7));
    let (ra, rb) = (runner(&s, "a", 2), runner(&s, "b", 3));
    let (Some(op_a), Some(op_b)) = (
        s.store
            .claim_operation(
                "a",
                s.clock.now() + chrono::Duration::seconds(60),
                s.clock.now(),
            )
            .await
            .unwrap(),
        s.store
            .claim_operation(
                "b",
                s.clock.now() + chrono::Duration::seconds(60),
                s.clock.now(),
            )
            .await
            .unwrap(),
    ) else {
        panic!("both operations should be claimable")
    };
    // Interleave their batches.
    let (mut more_a, mut more_b) = (true, true);
    while more_a || more_b {
        if more_a {
            more_a = ra.run_batch(&op_a).await.unwrap();
        }
        if more_b {
            more_b = rb.run_batch(&op_b).await.unwrap();
        }
    }
    let (a, b) = (
        s.store.get_operation(a.id).await.unwrap().unwrap(),
        s.store.get_operation(b.id).await.unwrap().unwrap(),
    );
    assert_eq!(a.status, OperationStatus::Completed);
    assert_eq!(b.status, OperationStatus::Completed);
    assert_eq!(a.done + b.done, 7, "{a:?} {b:?}");
    assert_eq!(a.done + a.skipped, 7);
    assert_eq!(b.done + b.skipped, 7);
    assert!(
        attempts(&s, &ids)
            .await
            .iter()
            .all(|s| *s == TaskStatus::Pending)
    );
    // Each task is claimable exactly once: retried once, queued once.
    let claims = s
        .store
        .claim_due(
            "w",
            100,
            s.clock.now() + chrono::Duration::seconds(60),
            s.clock.now(),
        )
        .await
        .unwrap();
    assert_eq!(claims.len(), 7);
}

#[tokio::test]
async fn a_task_that_failed_again_after_the_operation_was_created_is_left_alone() {
    let s = setup();
    let ids = failed_tasks(&s, 2).await;
    let op = create(&s, OperationKind::RetryTasks, r#"{"status":"failed"}"#).await;
    // One task changes after the operation was asked for (an operator retried it by hand and
    // it failed again).
    s.clock.advance(Duration::from_secs(1));
    s.store.retry_task(ids[0], s.clock.now()).await.unwrap();
    let claim = s
        .store
        .claim_due(
            "w",
            1,
            s.clock.now() + chrono::Duration::seconds(60),
            s.clock.now(),
        )
        .await
        .unwrap()
        .remove(0);
    let finish = Finish::Failed {
        error: "again".to_owned(),
    };
    s.store
        .finish_attempt(&claim, finish, s.clock.now())
        .await
        .unwrap();
    assert!(runner(&s, "r", 10).run_one().await.unwrap());
    let op = s.store.get_operation(op.id).await.unwrap().unwrap();
    assert_eq!((op.matched, op.done, op.skipped), (2, 1, 1));
    assert_eq!(
        attempts(&s, &ids).await,
        vec![TaskStatus::Failed, TaskStatus::Pending]
    );
}

#[tokio::test]
async fn a_cancelled_operation_stops_before_its_next_batch() {
    let s = setup();
    let ids = failed_tasks(&s, 5).await;
    let op = create(&s, OperationKind::RetryTasks, r#"{"all":true}"#).await;
    let r = runner(&s, "r", 2);
    let claimed = s
        .store
        .claim_operation(
            "r",
            s.clock.now() + chrono::Duration::seconds(60),
            s.clock.now(),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(r.run_batch(&claimed).await.unwrap());
    assert!(matches!(
        s.store
            .cancel_operation(op.id, s.clock.now())
            .await
            .unwrap(),
        CancelOperation::Cancelled(_)
    ));
    assert!(!r.run_batch(&claimed).await.unwrap());
    let op = s.store.get_operation(op.id).await.unwrap().unwrap();
    assert_eq!(op.status, OperationStatus::Cancelled);
    assert_eq!(op.done, 2);
    let pending = attempts(&s, &ids)
        .await
        .into_iter()
        .filter(|s| *s == TaskStatus::Pending)
        .count();
    assert_eq!(pending, 2);
    assert!(matches!(
        s.store
            .cancel_operation(op.id, s.clock.now())
            .await
            .unwrap(),
        CancelOperation::Finished(_)
    ));
}

#[tokio::test]
async fn an_operation_whose_runner_died_is_taken_over_after_its_lease() {
    let s = setup();
    failed_tasks(&s, 3).await;
    let op = create(&s, OperationKind::RetryTasks, r#"{"all":true}"#).await;
    let lease = s.clock.now() + chrono::Duration::seconds(60);
    assert!(
        s.store
            .claim_operation("dead", lease, s.clock.now())
            .await
            .unwrap()
            .is_some()
    );
    // Not before the lease ran out.
    assert!(!runner(&s, "next", 10).run_one().await.unwrap());
    s.clock.advance(Duration::from_secs(61));
    assert!(runner(&s, "next", 10).run_one().await.unwrap());
    let op = s.store.get_operation(op.id).await.unwrap().unwrap();
    assert_eq!((op.status, op.done), (OperationStatus::Completed, 3));
}

#[tokio::test]
async fn reprocess_skips_events_with_open_tasks_and_counts_the_rest() {
    let s = setup();
    failed_tasks(&s, 2).await;
    // A third event whose task is still pending.
    let now = s.clock.now();
    let spec = TaskSpec::new(TaskType::new("analyze").unwrap());
    s.store
        .ingest(new_event("open", now), vec![NewTask::new(spec, 0, now)])
        .await
        .unwrap();
    s.clock.advance(Duration::from_secs(1));
    let op = create(
        &s,
        OperationKind::ReprocessEvents,
        r#"{"event_type":"ping","repository":"octo/repo"}"#,
    )
    .await;
    assert_eq!(op.matched, 3);
    assert!(runner(&s, "r", 2).run_one().await.unwrap());
    let op = s.store.get_operation(op.id).await.unwrap().unwrap();
    assert_eq!(op.status, OperationStatus::Completed);
    assert_eq!((op.done, op.skipped, op.failed), (2, 1, 0), "{op:?}");
    for id in 1..=3 {
        let event = s.store.get_event(id).await.unwrap().unwrap();
        assert_eq!(event.retry_count, u32::from(id != 3), "event {id}");
    }
}
