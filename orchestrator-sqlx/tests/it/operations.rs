//! Bulk operations (`OperationStore`), written once and run on PostgreSQL, SQLite and the
//! in-memory reference store: dry-run counts, batched retries with the runner, racing
//! operations over the same tasks, reprocess by filter (open tasks skipped), cancellation, and
//! an operation that survives its runner.

use std::sync::Arc;
use std::time::Duration;

use orchestrator_core::clock::{Clock, ManualClock};
use orchestrator_core::engine::{Ingestor, OperationRunner, OperationRunnerConfig};
use orchestrator_core::queue::StoreQueue;
use orchestrator_core::routing::Router;
use orchestrator_core::signature::{SignatureVerifier, WebhookSecret};
use orchestrator_core::store::operation::{
    CancelOperation, Operation, OperationKind, OperationStatus, OperationStore, parse_request,
};
use orchestrator_core::store::{AttemptStore, EventStore, Finish, IngestOutcome, Page, TaskStore};
use orchestrator_core::task::TaskStatus;
use uuid::Uuid;

use crate::support::{at, event, task};

/// What every store under test is.
pub trait Ops: OperationStore + EventStore + TaskStore + AttemptStore {}
impl<T: OperationStore + EventStore + TaskStore + AttemptStore> Ops for T {}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(at(0)))
}

fn runner<S: Ops>(
    store: &Arc<S>,
    clock: &Arc<ManualClock>,
    name: &str,
    batch: u32,
) -> OperationRunner {
    let queue = Arc::new(StoreQueue::new(store.clone()));
    let ingestor = Arc::new(Ingestor::new(
        SignatureVerifier::new([WebhookSecret::new("s")]),
        Router::empty(),
        store.clone(),
        queue.clone(),
        clock.clone(),
    ));
    OperationRunner::new(
        store.clone(),
        ingestor,
        queue,
        clock.clone(),
        OperationRunnerConfig {
            worker_id: name.to_owned(),
            batch_size: batch,
            lease: Duration::from_secs(60),
        },
    )
}

/// `n` events of type `label`, each with one task of `repository`; the tasks failed with
/// `error`. Returns (event ids, task ids).
async fn failed<S: Ops>(
    store: &S,
    prefix: &str,
    n: usize,
    repository: &str,
    error: &str,
) -> (Vec<i64>, Vec<Uuid>) {
    let (mut events, mut tasks) = (Vec::new(), Vec::new());
    for i in 0..n {
        let mut t = task("analyze", 0, at(0));
        t.spec.repository = Some(repository.to_owned());
        let IngestOutcome::Accepted {
            event_id, task_ids, ..
        } = store
            .ingest(event(&format!("{prefix}-{i}"), "label", at(0)), vec![t])
            .await
            .unwrap()
        else {
            panic!("not accepted")
        };
        events.push(event_id);
        tasks.extend(task_ids);
    }
    for _ in 0..n {
        let claim = store
            .claim_due("w", 1, at(61), at(1))
            .await
            .unwrap()
            .remove(0);
        let finish = Finish::Failed {
            error: error.to_owned(),
        };
        store.finish_attempt(&claim, finish, at(1)).await.unwrap();
    }
    (events, tasks)
}

async fn create<S: Ops>(store: &S, kind: OperationKind, body: &str, now: i64) -> Operation {
    let request = parse_request(kind, body.as_bytes()).unwrap();
    let preview = store
        .preview(kind, &request.filter, 0, at(now))
        .await
        .unwrap();
    let op = Operation::new(&request, preview.matched, at(now));
    store.create_operation(&op).await.unwrap();
    op
}

async fn status<S: Ops>(store: &S, id: Uuid) -> TaskStatus {
    store.get_task(id).await.unwrap().unwrap().task.status
}

pub async fn a_retry_operation_retries_the_matching_tasks_in_batches<S: Ops>(store: Arc<S>) {
    let (events, mine) = failed(&*store, "a", 5, "octo/repo", "GitHub said 502").await;
    let (_, others) = failed(&*store, "b", 2, "octo/other", "GitHub said 502").await;
    let (_, unrelated) = failed(&*store, "c", 1, "octo/repo", "bad config").await;
    // Dry run: the count and a sample, oldest first; nothing changes.
    let request = parse_request(
        OperationKind::RetryTasks,
        br#"{"repository":"octo/repo","error_contains":"said 502","dry_run":true}"#,
    )
    .unwrap();
    let preview = store
        .preview(OperationKind::RetryTasks, &request.filter, 3, at(2))
        .await
        .unwrap();
    assert_eq!(preview.matched, 5);
    assert_eq!(preview.task_ids, mine[..3].to_vec());
    assert_eq!(status(&*store, mine[0]).await, TaskStatus::Failed);

    let clock = clock();
    clock.set(at(2));
    let op = create(
        &*store,
        OperationKind::RetryTasks,
        r#"{"repository":"octo/repo","error_contains":"said 502"}"#,
        2,
    )
    .await;
    assert_eq!((op.status, op.matched), (OperationStatus::Pending, 5));
    clock.set(at(3));
    assert!(runner(&store, &clock, "r", 2).run_one().await.unwrap());
    let op = store.get_operation(op.id).await.unwrap().unwrap();
    assert_eq!(op.status, OperationStatus::Completed);
    assert_eq!((op.done, op.failed, op.skipped), (5, 0, 0));
    assert_eq!((op.started_at, op.finished_at), (Some(at(3)), Some(at(3))));
    for id in &mine {
        assert_eq!(status(&*store, *id).await, TaskStatus::Pending);
    }
    for id in others.iter().chain(&unrelated) {
        assert_eq!(status(&*store, *id).await, TaskStatus::Failed);
    }
    let event = store.get_event(events[0]).await.unwrap().unwrap();
    assert!(!event.processed, "a retried task's event is open again");
    // The retried tasks run, once each, and settle their events.
    let claims = store.claim_due("w", 100, at(64), at(4)).await.unwrap();
    assert_eq!(claims.len(), 5);
    for claim in claims {
        let done = Finish::Completed {
            output: serde_json::json!({}),
            followups: Vec::new(),
        };
        store.finish_attempt(&claim, done, at(5)).await.unwrap();
    }
    assert!(store.get_event(events[0]).await.unwrap().unwrap().processed);
    let listed = store.list_operations(None, Page::default()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, op.id);
    // Keyset pages: a newer operation first, then (after it) the first one, then nothing.
    let newer = create(&*store, OperationKind::RetryTasks, r#"{"all":true}"#, 6).await;
    let page = |before, limit| {
        let store = &store;
        async move {
            let page = Page { limit, offset: 0 };
            let ops = store.list_operations(before, page).await.unwrap();
            ops.iter().map(|o| o.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(page(None, 1).await, [newer.id]);
    assert_eq!(page(Some(newer.id), 1).await, [op.id]);
    assert!(page(Some(op.id), 1).await.is_empty());
}

pub async fn racing_operations_retry_each_task_once<S: Ops>(store: Arc<S>) {
    let (_, ids) = failed(&*store, "r", 40, "octo/repo", "boom").await;
    let clock = clock();
    clock.set(at(2));
    let a = create(&*store, OperationKind::RetryTasks, r#"{"all":true}"#, 2).await;
    let b = create(
        &*store,
        OperationKind::RetryTasks,
        r#"{"status":"failed"}"#,
        2,
    )
    .await;
    let (ra, rb) = (
        runner(&store, &clock, "a", 3),
        runner(&store, &clock, "b", 4),
    );
    let (one, two) = tokio::join!(
        tokio::spawn(async move { ra.run_one().await.unwrap() }),
        tokio::spawn(async move { rb.run_one().await.unwrap() }),
    );
    assert!(one.unwrap() && two.unwrap());
    let a = store.get_operation(a.id).await.unwrap().unwrap();
    let b = store.get_operation(b.id).await.unwrap().unwrap();
    assert_eq!(
        (a.status, b.status),
        (OperationStatus::Completed, OperationStatus::Completed)
    );
    assert_eq!(
        a.done + b.done,
        40,
        "each task retried by exactly one: {a:?} {b:?}"
    );
    assert_eq!((a.done + a.skipped, b.done + b.skipped), (40, 40));
    // Every task is queued once: forty claims, then none.
    let claims = store.claim_due("w", 100, at(63), at(3)).await.unwrap();
    assert_eq!(claims.len(), 40);
    for id in &ids {
        assert_eq!(status(&*store, *id).await, TaskStatus::Running);
        let executions = store.get_task(*id).await.unwrap().unwrap().executions;
        assert_eq!(
            executions.len(),
            2,
            "one failed attempt, one after the retry"
        );
    }
}

pub async fn reprocess_by_filter_skips_events_with_open_tasks<S: Ops>(store: Arc<S>) {
    let (events, _) = failed(&*store, "f", 3, "octo/repo", "boom").await;
    // An event whose task is still pending: reprocessing it would be a 409; the operation
    // skips it and counts it.
    let IngestOutcome::Accepted { event_id: open, .. } = store
        .ingest(
            event("open", "label", at(1)),
            vec![task("analyze", 0, at(1))],
        )
        .await
        .unwrap()
    else {
        panic!("not accepted")
    };
    // Another repository's event is not matched.
    let mut other = event("other", "label", at(1));
    other.repository = Some("octo/other".to_owned());
    store.ingest(other, Vec::new()).await.unwrap();

    let request = parse_request(
        OperationKind::ReprocessEvents,
        br#"{"event_type":"label","action":"opened","repository":"octo/repo"}"#,
    )
    .unwrap();
    let preview = store
        .preview(OperationKind::ReprocessEvents, &request.filter, 10, at(2))
        .await
        .unwrap();
    assert_eq!(preview.matched, 4);
    assert_eq!(preview.event_ids, [events.clone(), vec![open]].concat());

    let clock = clock();
    clock.set(at(2));
    let op = create(
        &*store,
        OperationKind::ReprocessEvents,
        r#"{"event_type":"label","action":"opened","repository":"octo/repo"}"#,
        2,
    )
    .await;
    clock.set(at(3));
    assert!(runner(&store, &clock, "r", 3).run_one().await.unwrap());
    let op = store.get_operation(op.id).await.unwrap().unwrap();
    assert_eq!(op.status, OperationStatus::Completed);
    assert_eq!((op.matched, op.done, op.skipped, op.failed), (4, 3, 1, 0));
    for id in &events {
        assert_eq!(store.get_event(*id).await.unwrap().unwrap().retry_count, 1);
    }
    assert_eq!(store.get_event(open).await.unwrap().unwrap().retry_count, 0);
}

pub async fn a_cancelled_operation_stops_and_a_dead_runner_is_replaced<S: Ops>(store: Arc<S>) {
    failed(&*store, "c", 6, "octo/repo", "boom").await;
    let clock = clock();
    clock.set(at(2));
    let op = create(&*store, OperationKind::RetryTasks, r#"{"all":true}"#, 2).await;
    // A runner takes it, does one batch and dies.
    let dead = store
        .claim_operation("dead", at(62), at(2))
        .await
        .unwrap()
        .unwrap();
    let batch = store
        .retry_batch(op.id, "dead", 2, at(62), at(2))
        .await
        .unwrap();
    assert_eq!((batch.retried.len(), batch.more), (2, true));
    // Its lease holds it until it runs out; then another runner goes on from its cursor.
    clock.set(at(30));
    assert!(!runner(&store, &clock, "next", 2).run_one().await.unwrap());
    clock.set(at(63));
    let next = store
        .claim_operation("next", at(123), at(63))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((next.id, next.cursor, next.done), (dead.id, next.cursor, 2));
    assert!(next.cursor > 0);
    // The dead runner's late batch changes nothing.
    let late = store
        .retry_batch(op.id, "dead", 2, at(64), at(64))
        .await
        .unwrap();
    assert!(late.retried.is_empty() && !late.more);
    let batch = store
        .retry_batch(op.id, "next", 2, at(123), at(63))
        .await
        .unwrap();
    assert_eq!(batch.retried.len(), 2);
    // Cancelled: the next batch does nothing; a second cancel says it had finished.
    let CancelOperation::Cancelled(cancelled) =
        store.cancel_operation(op.id, at(64)).await.unwrap()
    else {
        panic!("not cancelled")
    };
    assert_eq!(cancelled.status, OperationStatus::Cancelled);
    assert_eq!(cancelled.finished_at, Some(at(64)));
    let after = store
        .retry_batch(op.id, "next", 2, at(123), at(65))
        .await
        .unwrap();
    assert!(after.retried.is_empty());
    let op = store.get_operation(op.id).await.unwrap().unwrap();
    assert_eq!((op.status, op.done), (OperationStatus::Cancelled, 4));
    assert!(matches!(
        store.cancel_operation(op.id, at(66)).await.unwrap(),
        CancelOperation::Finished(_)
    ));
    assert!(matches!(
        store
            .cancel_operation(Uuid::now_v7(), at(66))
            .await
            .unwrap(),
        CancelOperation::NotFound
    ));
    let _ = clock.now();
}

/// Tasks of the 100,000-task retry (issue 13's benchmark, here without the clock).
const MANY: i64 = 100_000;

/// 100,000 failed tasks on PostgreSQL, seeded with `generate_series` (two per event, beside a
/// completed one that must stay alone), retried by one operation in the runner's production
/// batch size: afterwards every one is pending, the operation counted each once, and each
/// event's `open_tasks` rose by exactly its two tasks (a task retried twice would count twice).
/// A check of the benchmark's end state, not a timed test.
pub async fn a_retry_of_100000_tasks_requeues_each_once(store: &orchestrator_sqlx::PgStore) {
    let pool = store.pool();
    sqlx::query(
        "INSERT INTO webhook_events (delivery_id, event_type, source, repository, payload, \
         headers, processed, open_tasks, created_at, updated_at) SELECT 'many-' || g, \
         'pull_request', 'github', 'octo/many', CAST('{}' AS JSON), CAST('[]' AS JSONB), TRUE, 0, \
         $2, $2 FROM generate_series(1, $1) g",
    )
    .bind(MANY / 2)
    .bind(at(0))
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO workflow_tasks (task_id, webhook_event_id, task_type, status, repository, \
         config, input_data, error_message, retry_count, max_retries, run_at, created_at, \
         updated_at) SELECT gen_random_uuid(), e.id, k.task_type, k.status, e.repository, \
         CAST('{}' AS JSONB), CAST('{}' AS JSONB), 'boom', 3, 3, $1, $1, $1 \
         FROM webhook_events e CROSS JOIN (VALUES (1, 'analyze', 'failed'), \
         (2, 'trigger', 'failed'), (3, 'push', 'completed')) AS k(n, task_type, status) \
         ORDER BY e.id, k.n",
    )
    .bind(at(0))
    .execute(pool)
    .await
    .unwrap();
    let store = Arc::new(store.clone());
    let clock = clock();
    clock.set(at(2));
    let op = create(
        &*store,
        OperationKind::RetryTasks,
        r#"{"status":"failed"}"#,
        2,
    )
    .await;
    assert_eq!(op.matched, MANY as u64);
    assert!(runner(&store, &clock, "many", 500).run_one().await.unwrap());
    let op = store.get_operation(op.id).await.unwrap().unwrap();
    assert_eq!(
        (op.status, op.done, op.failed, op.skipped),
        (OperationStatus::Completed, MANY as u64, 0, 0)
    );
    let (pending, failed, completed): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'pending'), \
         count(*) FILTER (WHERE status = 'failed'), \
         count(*) FILTER (WHERE status = 'completed') FROM workflow_tasks",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((pending, failed, completed), (MANY, 0, MANY / 2));
    let (sum, min, max): (i64, i32, i32) = sqlx::query_as(
        "SELECT sum(open_tasks), min(open_tasks), max(open_tasks) FROM webhook_events",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        (sum, min, max),
        (MANY, 2, 2),
        "each task re-opened its event once"
    );
}
