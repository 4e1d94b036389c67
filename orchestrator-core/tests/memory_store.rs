//! The reference semantics of `MemoryStore` (EventStore + TaskStore + AttemptStore), which every
//! other store mirrors, and the fake outbound clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use orchestrator_core::agent::{AgentRunRequest, CodingAgent, RunOutcome};
use orchestrator_core::clock::{self, Clock, ManualClock};
use orchestrator_core::error::{ClientErrorKind, StoreErrorKind};
use orchestrator_core::event::NewEvent;
use orchestrator_core::github::{GitHubApi, PullRequestFile, RepoRef};
use orchestrator_core::memory::{FakeAgent, FakeGitHub, MemoryStore};
use orchestrator_core::queue::{StoreQueue, TaskQueue};
use orchestrator_core::store::{
    AttemptStore, Claim, EventFilter, EventStore, ExternalRun, Finish, IngestOutcome, Page,
    ReprocessOutcome, RetentionPolicy, RetryOutcome, TaskFilter, TaskStore,
};
use orchestrator_core::task::{ExecutionStatus, NewTask, TaskSpec, TaskStatus, TaskType};
use serde_json::json;
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(60);

fn t0() -> DateTime<Utc> {
    ManualClock::default().now()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn event(delivery: &str, event_type: &str, at: DateTime<Utc>) -> NewEvent {
    NewEvent {
        delivery_id: delivery.to_owned(),
        event_type: event_type.to_owned(),
        action: Some("opened".to_owned()),
        source: "github".to_owned(),
        repository: Some("octo/repo".to_owned()),
        installation_id: None,
        payload: Bytes::from_static(br#"{"action":"opened"}"#),
        headers: vec![("x-github-event".to_owned(), event_type.to_owned())],
        received_at: at,
        parse_error: None,
    }
}

fn task(kind: &str, priority: i32, run_at: DateTime<Utc>) -> NewTask {
    let mut spec = TaskSpec::new(TaskType::new(kind).unwrap());
    spec.priority = priority;
    spec.repository = Some("octo/repo".to_owned());
    NewTask::new(spec, 2, run_at)
}

/// Ingests one event with `tasks`; returns (event id, task ids).
async fn ingest(
    store: &MemoryStore,
    delivery: &str,
    tasks: Vec<NewTask>,
    at: DateTime<Utc>,
) -> (i64, Vec<Uuid>) {
    match store
        .ingest(event(delivery, "pull_request", at), tasks)
        .await
        .unwrap()
    {
        IngestOutcome::Accepted {
            event_id, task_ids, ..
        } => (event_id, task_ids),
        other => panic!("expected accepted, got {other:?}"),
    }
}

async fn claim_one(store: &MemoryStore, worker: &str, now: DateTime<Utc>) -> Claim {
    let mut claims = store
        .claim_due(worker, 1, clock::add(now, LEASE), now)
        .await
        .unwrap();
    assert_eq!(claims.len(), 1, "expected one claimable task");
    claims.remove(0)
}

async fn status(store: &MemoryStore, id: Uuid) -> TaskStatus {
    store.get_task(id).await.unwrap().unwrap().task.status
}

#[tokio::test]
async fn ingest_commits_event_and_tasks_and_a_duplicate_writes_nothing() {
    let store = MemoryStore::new();
    let now = t0();
    let (event_id, ids) = ingest(
        &store,
        "d-1",
        vec![task("a", 0, now), task("b", 0, now)],
        now,
    )
    .await;
    assert_eq!(ids.len(), 2);
    let stored = store.get_event(event_id).await.unwrap().unwrap();
    assert!(!stored.processed);
    assert_eq!(stored.processing_started_at, None);
    assert_eq!(stored.created_at, now);
    let task = store.get_task(ids[0]).await.unwrap().unwrap();
    assert_eq!(task.task.status, TaskStatus::Pending);
    assert_eq!(task.task.webhook_event_id, Some(event_id));
    assert_eq!(
        (
            task.task.attempts,
            task.task.retry_count,
            task.task.max_retries
        ),
        (0, 0, 2)
    );
    assert!(task.executions.is_empty());

    let again = store
        .ingest(event("d-1", "pull_request", now), vec![task_new()])
        .await
        .unwrap();
    assert_eq!(again, IngestOutcome::Duplicate { event_id });
    let stats = store.stats(now).await.unwrap();
    assert_eq!(
        (stats.webhook_events_total, stats.workflow_tasks_total),
        (1, 2)
    );
}

fn task_new() -> NewTask {
    task("a", 0, t0())
}

#[tokio::test]
async fn an_event_without_tasks_is_processed_on_arrival() {
    let store = MemoryStore::new();
    let now = t0();
    let (event_id, ids) = ingest(&store, "d-1", vec![], now).await;
    assert!(ids.is_empty());
    let stored = store.get_event(event_id).await.unwrap().unwrap();
    assert!(stored.processed);
    assert_eq!(stored.processing_started_at, Some(now));
    assert_eq!(stored.processing_completed_at, Some(now));
}

#[tokio::test]
async fn ingest_with_a_known_task_id_conflicts_and_writes_nothing() {
    let store = MemoryStore::new();
    let now = t0();
    let first = task_new();
    let id = first.task_id;
    ingest(&store, "d-1", vec![first.clone()], now).await;
    let err = store
        .ingest(event("d-2", "push", now), vec![task_new(), first])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Conflict);
    assert_eq!(
        store
            .list_events(&EventFilter::default(), Page::default())
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.stats(now).await.unwrap().workflow_tasks_total, 1);
    assert!(store.get_task(id).await.unwrap().is_some());
}

#[tokio::test]
async fn claim_takes_due_tasks_by_priority_then_due_time_then_insertion() {
    let store = MemoryStore::new();
    let now = t0();
    let early = clock::add(now, secs(0)) - chrono::Duration::seconds(10);
    let tasks = vec![
        task("low", 0, now),
        task("high", 5, now),
        task("low_early", 0, early),
        task("future", 9, clock::add(now, secs(30))),
        task("low_late_insert", 0, now),
    ];
    let (event_id, ids) = ingest(&store, "d-1", tasks, early).await;
    let claims = store
        .claim_due("w1", 10, clock::add(now, LEASE), now)
        .await
        .unwrap();
    let order: Vec<Uuid> = claims.iter().map(|c| c.task.task_id).collect();
    assert_eq!(
        order,
        vec![ids[1], ids[2], ids[0], ids[4]],
        "the future task is not due"
    );

    let claim = &claims[0];
    assert_eq!(claim.attempt, 1);
    assert_eq!(claim.lease_expires_at, clock::add(now, LEASE));
    let detail = store.get_task(ids[1]).await.unwrap().unwrap();
    assert_eq!(detail.task.status, TaskStatus::Running);
    assert_eq!(detail.task.lease_owner.as_deref(), Some("w1"));
    assert_eq!(detail.task.started_at, Some(now));
    assert_eq!(detail.task.attempts, 1);
    assert_eq!(detail.executions.len(), 1);
    assert_eq!(detail.executions[0].status, ExecutionStatus::Running);
    assert_eq!(detail.executions[0].execution_id, claim.execution_id);
    let stored = store.get_event(event_id).await.unwrap().unwrap();
    assert_eq!(stored.processing_started_at, Some(now));

    // Nothing else is due; start_attempt refuses a running or not-yet-due task.
    assert!(
        store
            .claim_due("w2", 10, clock::add(now, LEASE), now)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .start_attempt(ids[1], "w2", clock::add(now, LEASE), now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .start_attempt(ids[3], "w2", clock::add(now, LEASE), now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .start_attempt(Uuid::now_v7(), "w2", clock::add(now, LEASE), now)
            .await
            .unwrap()
            .is_none()
    );
    let later = clock::add(now, secs(30));
    assert!(
        store
            .start_attempt(ids[3], "w2", clock::add(later, LEASE), later)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn completed_attempt_stores_output_followups_and_settles_the_event() {
    let store = MemoryStore::new();
    let now = t0();
    let (event_id, ids) = ingest(&store, "d-1", vec![task_new()], now).await;
    let claim = claim_one(&store, "w1", now).await;
    let done = clock::add(now, Duration::from_millis(1500));
    let mut followup = task("codegen_trigger", 0, done);
    followup.parent_task_id = None;
    let report = store
        .finish_attempt(
            &claim,
            Finish::Completed {
                output: json!({"ok": true}),
                followups: vec![followup],
            },
            done,
        )
        .await
        .unwrap();
    assert_eq!(report.status, TaskStatus::Completed);
    assert_eq!(report.run_at, None);
    assert_eq!(report.followups.len(), 1);
    let detail = store.get_task(ids[0]).await.unwrap().unwrap();
    assert_eq!(detail.task.output_data, Some(json!({"ok": true})));
    assert_eq!(detail.task.completed_at, Some(done));
    assert_eq!(detail.task.lease_owner, None);
    assert_eq!(detail.executions[0].status, ExecutionStatus::Completed);
    assert_eq!(detail.executions[0].duration_ms, Some(1500));
    let child = store
        .get_task(report.followups[0])
        .await
        .unwrap()
        .unwrap()
        .task;
    assert_eq!(child.parent_task_id, Some(ids[0]));
    assert_eq!(child.webhook_event_id, Some(event_id));
    assert_eq!(child.status, TaskStatus::Pending);
    // The follow-up is still open: the event is not processed yet.
    assert!(!store.get_event(event_id).await.unwrap().unwrap().processed);

    let claim = claim_one(&store, "w1", done).await;
    let end = clock::add(done, secs(1));
    store
        .finish_attempt(
            &claim,
            Finish::Failed {
                error: "agent refused".into(),
            },
            end,
        )
        .await
        .unwrap();
    let stored = store.get_event(event_id).await.unwrap().unwrap();
    assert!(stored.processed);
    assert_eq!(stored.processing_completed_at, Some(end));
    assert_eq!(stored.error_message.as_deref(), Some("agent refused"));
}

#[tokio::test]
async fn retry_defer_and_release_reschedule_with_their_own_bookkeeping() {
    let store = MemoryStore::new();
    let now = t0();
    let (_, ids) = ingest(&store, "d-1", vec![task_new()], now).await;
    let id = ids[0];

    let claim = claim_one(&store, "w1", now).await;
    let at = clock::add(now, secs(2));
    let report = store
        .finish_attempt(
            &claim,
            Finish::Retry {
                error: "502".into(),
                at,
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        (report.status, report.run_at),
        (TaskStatus::Retrying, Some(at))
    );
    let t = store.get_task(id).await.unwrap().unwrap();
    assert_eq!(
        (t.task.retry_count, t.task.error_message.as_deref()),
        (1, Some("502"))
    );
    assert_eq!(t.executions[0].status, ExecutionStatus::Failed);
    assert!(
        store
            .claim_due("w1", 1, clock::add(now, LEASE), now)
            .await
            .unwrap()
            .is_empty(),
        "not due before its backoff"
    );

    let claim = claim_one(&store, "w1", at).await;
    assert_eq!(claim.attempt, 2);
    let later = clock::add(at, secs(30));
    let deferred = Finish::Deferred {
        at: later,
        reason: "breaker open".into(),
        output: Some(json!({"run": 1})),
    };
    let report = store.finish_attempt(&claim, deferred, at).await.unwrap();
    assert_eq!(
        (report.status, report.run_at),
        (TaskStatus::Pending, Some(later))
    );
    let t = store.get_task(id).await.unwrap().unwrap();
    assert_eq!(t.task.retry_count, 1, "a deferral uses no retry");
    assert_eq!(t.task.output_data, Some(json!({"run": 1})));
    assert_eq!(t.executions[1].status, ExecutionStatus::Deferred);
    assert_eq!(
        t.executions[1].error_message.as_deref(),
        Some("breaker open")
    );

    let claim = claim_one(&store, "w1", later).await;
    let deferred = Finish::Deferred {
        at: later,
        reason: "poll".into(),
        output: None,
    };
    store.finish_attempt(&claim, deferred, later).await.unwrap();
    assert_eq!(
        store.get_task(id).await.unwrap().unwrap().task.output_data,
        Some(json!({"run": 1})),
        "kept when None"
    );

    let claim = claim_one(&store, "w1", later).await;
    let report = store
        .finish_attempt(&claim, Finish::Released, later)
        .await
        .unwrap();
    assert_eq!(
        (report.status, report.run_at),
        (TaskStatus::Pending, Some(later))
    );
    let t = store.get_task(id).await.unwrap().unwrap();
    assert_eq!(t.executions[3].status, ExecutionStatus::Released);
    assert_eq!((t.task.attempts, t.task.retry_count), (4, 1));
    assert_eq!(
        t.task.started_at,
        Some(now),
        "started_at is the first attempt's"
    );
}

#[tokio::test]
async fn a_claim_that_lost_its_lease_cannot_finish_or_extend() {
    let store = MemoryStore::new();
    let now = t0();
    let (_, ids) = ingest(&store, "d-1", vec![task_new()], now).await;
    let stale = claim_one(&store, "w1", now).await;
    assert!(
        AttemptStore::extend_lease(&store, &stale, clock::add(now, secs(120)))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .get_task(ids[0])
            .await
            .unwrap()
            .unwrap()
            .task
            .lease_expires_at,
        Some(clock::add(now, secs(120)))
    );
    let expired_at = clock::add(now, secs(120));
    assert_eq!(store.expire_leases(expired_at).await.unwrap(), vec![ids[0]]);
    // The same worker claims it again: the old claim's execution is abandoned.
    let fresh = claim_one(&store, "w1", expired_at).await;
    let err = store
        .finish_attempt(
            &stale,
            Finish::Completed {
                output: json!({}),
                followups: vec![],
            },
            expired_at,
        )
        .await;
    assert_eq!(err.unwrap_err().kind(), StoreErrorKind::Conflict);
    assert!(
        !AttemptStore::extend_lease(&store, &stale, clock::add(expired_at, LEASE))
            .await
            .unwrap()
    );
    assert_eq!(
        status(&store, ids[0]).await,
        TaskStatus::Running,
        "the failed finish changed nothing"
    );
    store
        .finish_attempt(
            &fresh,
            Finish::Completed {
                output: json!({}),
                followups: vec![],
            },
            expired_at,
        )
        .await
        .unwrap();
    assert_eq!(status(&store, ids[0]).await, TaskStatus::Completed);
}

#[tokio::test]
async fn expired_leases_retry_until_the_budget_is_used_then_fail() {
    let store = MemoryStore::new();
    let mut now = t0();
    let mut new = task_new();
    new.max_retries = 1;
    let (event_id, ids) = ingest(&store, "d-1", vec![new], now).await;
    claim_one(&store, "w1", now).await;
    assert!(
        store
            .expire_leases(clock::add(now, secs(59)))
            .await
            .unwrap()
            .is_empty(),
        "lease still valid"
    );
    now = clock::add(now, LEASE);
    assert_eq!(store.expire_leases(now).await.unwrap(), vec![ids[0]]);
    let t = store.get_task(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (t.task.status, t.task.retry_count, t.task.run_at),
        (TaskStatus::Retrying, 1, now)
    );
    assert_eq!(t.task.lease_owner, None);
    assert_eq!(t.executions[0].status, ExecutionStatus::Abandoned);

    claim_one(&store, "w2", now).await;
    now = clock::add(now, LEASE);
    assert_eq!(
        store.expire_leases(now).await.unwrap().len(),
        0,
        "no retry left: failed, not requeued"
    );
    let t = store.get_task(ids[0]).await.unwrap().unwrap();
    assert_eq!(t.task.status, TaskStatus::Failed);
    assert_eq!(t.task.completed_at, Some(now));
    let stored = store.get_event(event_id).await.unwrap().unwrap();
    assert!(stored.processed);
    assert!(
        stored
            .error_message
            .unwrap()
            .contains("lease of worker w2 expired")
    );
}

#[tokio::test]
async fn manual_retry_reopens_only_failed_or_cancelled_tasks() {
    let store = MemoryStore::new();
    let now = t0();
    let (event_id, ids) = ingest(&store, "d-1", vec![task_new(), task_new()], now).await;
    assert_eq!(
        store.retry_task(Uuid::now_v7(), now).await.unwrap(),
        RetryOutcome::NotFound
    );
    assert_eq!(
        store.retry_task(ids[0], now).await.unwrap(),
        RetryOutcome::NotRetryable(TaskStatus::Pending)
    );

    let a = claim_one(&store, "w", now).await;
    assert_eq!(
        store.retry_task(a.task.task_id, now).await.unwrap(),
        RetryOutcome::NotRetryable(TaskStatus::Running)
    );
    store
        .finish_attempt(
            &a,
            Finish::Retry {
                error: "x".into(),
                at: now,
            },
            now,
        )
        .await
        .unwrap();
    let a = claim_one(&store, "w", now).await;
    store
        .finish_attempt(
            &a,
            Finish::Failed {
                error: "boom".into(),
            },
            now,
        )
        .await
        .unwrap();
    let b = claim_one(&store, "w", now).await;
    store
        .finish_attempt(
            &b,
            Finish::Completed {
                output: json!({}),
                followups: vec![],
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        store.retry_task(b.task.task_id, now).await.unwrap(),
        RetryOutcome::NotRetryable(TaskStatus::Completed)
    );
    assert!(store.get_event(event_id).await.unwrap().unwrap().processed);

    let later = clock::add(now, secs(5));
    let RetryOutcome::Scheduled(task) = store.retry_task(a.task.task_id, later).await.unwrap()
    else {
        panic!("failed task must be retryable");
    };
    assert_eq!(task.status, TaskStatus::Pending);
    assert_eq!(
        (
            task.retry_count,
            task.run_at,
            task.completed_at,
            task.error_message.as_deref()
        ),
        (0, later, None, None)
    );
    assert_eq!(task.attempts, 2, "attempts keep counting every claim");
    let stored = store.get_event(event_id).await.unwrap().unwrap();
    assert!(!stored.processed);
    assert_eq!(stored.processing_completed_at, None);
    assert_eq!(claim_one(&store, "w", later).await.attempt, 3);
}

#[tokio::test]
async fn reprocess_adds_tasks_and_reopens_the_event() {
    let store = MemoryStore::new();
    let now = t0();
    let (event_id, ids) = ingest(&store, "d-1", vec![task_new()], now).await;
    // While a task is open nothing is added, and the open task is named.
    assert_eq!(
        store
            .reprocess_event(event_id, vec![task("x", 0, now)], now)
            .await
            .unwrap(),
        ReprocessOutcome::Busy {
            event_id,
            open_tasks: ids.clone()
        }
    );
    let c = claim_one(&store, "w", now).await;
    assert!(matches!(
        store.reprocess_event(event_id, vec![], now).await.unwrap(),
        ReprocessOutcome::Busy { .. }
    ));
    store
        .finish_attempt(
            &c,
            Finish::Failed {
                error: "boom".into(),
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        store.reprocess_event(999, vec![], now).await.unwrap(),
        ReprocessOutcome::NotFound
    );

    let later = clock::add(now, secs(60));
    let ReprocessOutcome::Reprocessed { task_ids, .. } = store
        .reprocess_event(event_id, vec![task("a", 0, later)], later)
        .await
        .unwrap()
    else {
        panic!("not reprocessed")
    };
    assert_eq!(task_ids.len(), 1);
    let stored = store.get_event(event_id).await.unwrap().unwrap();
    assert!(!stored.processed);
    assert_eq!(
        (
            stored.retry_count,
            stored.error_message,
            stored.processing_completed_at
        ),
        (1, None, None)
    );
    assert_eq!(
        status(&store, ids[0]).await,
        TaskStatus::Failed,
        "old tasks are kept as they were"
    );
    let fresh = store.get_task(task_ids[0]).await.unwrap().unwrap().task;
    assert_eq!(
        (fresh.webhook_event_id, fresh.created_at),
        (Some(event_id), later)
    );

    // Reprocessing into no tasks when everything is finished keeps the event processed.
    let c = claim_one(&store, "w", later).await;
    store
        .finish_attempt(
            &c,
            Finish::Completed {
                output: json!({}),
                followups: vec![],
            },
            later,
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .reprocess_event(event_id, vec![], later)
            .await
            .unwrap(),
        ReprocessOutcome::Reprocessed { .. }
    ));
    let stored = store.get_event(event_id).await.unwrap().unwrap();
    assert!(stored.processed);
    assert_eq!(stored.retry_count, 2);
}

#[tokio::test]
async fn external_runs_are_recorded_on_the_task_and_its_parent() {
    let store = MemoryStore::new();
    let now = t0();
    ingest(&store, "d-1", vec![task_new()], now).await;
    let parent = claim_one(&store, "w", now).await;
    let followup = task("codegen_trigger", 0, now);
    let report = store
        .finish_attempt(
            &parent,
            Finish::Completed {
                output: json!({}),
                followups: vec![followup],
            },
            now,
        )
        .await
        .unwrap();
    let child = report.followups[0];
    let run = ExternalRun {
        id: "1001".into(),
        url: Some("https://agent.test/runs/1001".into()),
    };
    store.record_external_run(child, &run, now).await.unwrap();
    for id in [child, parent.task.task_id] {
        let t = store.get_task(id).await.unwrap().unwrap().task;
        assert_eq!(t.codegen_task_id.as_deref(), Some("1001"));
        assert_eq!(
            t.codegen_task_url.as_deref(),
            Some("https://agent.test/runs/1001")
        );
    }
    let err = store
        .record_external_run(Uuid::now_v7(), &run, now)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Internal);
}

#[tokio::test]
async fn stats_count_everything_and_the_last_24_hours() {
    let store = MemoryStore::new();
    let old = t0();
    let now = clock::add(old, secs(48 * 3600));
    let (_, old_ids) = ingest(&store, "d-old", vec![task_new()], old).await;
    let c = claim_one(&store, "w", old).await;
    store
        .finish_attempt(
            &c,
            Finish::Failed {
                error: "old".into(),
            },
            clock::add(old, secs(2)),
        )
        .await
        .unwrap();
    assert_eq!(status(&store, old_ids[0]).await, TaskStatus::Failed);
    ingest(
        &store,
        "d-new",
        vec![task("x", 0, now), task("y", 0, now)],
        now,
    )
    .await;
    store
        .ingest(event("d-push", "push", now), vec![])
        .await
        .unwrap();
    let c = claim_one(&store, "w", now).await;
    store
        .finish_attempt(
            &c,
            Finish::Failed {
                error: "new".into(),
            },
            clock::add(now, secs(4)),
        )
        .await
        .unwrap();

    let stats = store.stats(clock::add(now, secs(10))).await.unwrap();
    assert_eq!(
        (
            stats.webhook_events_total,
            stats.workflow_tasks_total,
            stats.task_executions_total
        ),
        (3, 3, 2)
    );
    assert_eq!(stats.tasks_by_status.len(), 6, "every status is listed");
    assert_eq!(stats.tasks_by_status["failed"], 2);
    assert_eq!(stats.tasks_by_status["pending"], 1);
    assert_eq!(stats.tasks_by_status["completed"], 0);
    assert_eq!(stats.events_by_type["pull_request"], 2);
    assert_eq!(stats.events_by_type["push"], 1);
    assert_eq!(stats.avg_processing_time_ms, Some(3000.0));
    assert_eq!((stats.webhooks_24h, stats.tasks_24h), (2, 2));
    assert_eq!(
        (stats.failed_webhooks_24h, stats.failed_tasks_24h),
        (0, 1),
        "the new event still has a task open"
    );
}

#[tokio::test]
async fn cleanup_removes_only_old_finished_data() {
    let store = MemoryStore::new();
    let old = t0();
    let now = clock::add(old, secs(10 * 24 * 3600));
    // Old, processed: removed with its task and execution.
    let (done_event, _) = ingest(&store, "d-done", vec![task_new()], old).await;
    let c = claim_one(&store, "w", old).await;
    store
        .finish_attempt(
            &c,
            Finish::Completed {
                output: json!({}),
                followups: vec![],
            },
            old,
        )
        .await
        .unwrap();
    // Old, unprocessed (a task still pending): kept, and so is its pending task, but its old
    // finished task goes.
    let (open_event, open_ids) = ingest(
        &store,
        "d-open",
        vec![task("z", 9, old), task("a", 0, now)],
        old,
    )
    .await;
    let c = claim_one(&store, "w", old).await;
    assert_eq!(c.task.task_id, open_ids[0]);
    store
        .finish_attempt(&c, Finish::Failed { error: "x".into() }, old)
        .await
        .unwrap();
    // Recent, processed: kept.
    let (recent_event, _) = ingest(&store, "d-recent", vec![], now).await;

    let report = store
        .cleanup(&RetentionPolicy::default(), now)
        .await
        .unwrap();
    assert_eq!(
        (
            report.events_deleted,
            report.tasks_deleted,
            report.executions_deleted
        ),
        (1, 2, 2)
    );
    assert!(store.get_event(done_event).await.unwrap().is_none());
    assert!(store.get_event(open_event).await.unwrap().is_some());
    assert!(store.get_event(recent_event).await.unwrap().is_some());
    assert!(store.get_task(open_ids[0]).await.unwrap().is_none());
    assert_eq!(status(&store, open_ids[1]).await, TaskStatus::Pending);
    // The delivery id is free again once its event is gone.
    assert!(matches!(
        store
            .ingest(event("d-done", "pull_request", now), vec![])
            .await
            .unwrap(),
        IngestOutcome::Accepted { .. }
    ));
}

#[tokio::test]
async fn lists_filter_and_page_newest_first() {
    let store = MemoryStore::new();
    let now = t0();
    for i in 0..5u64 {
        let at = clock::add(now, secs(i));
        let kind = if i % 2 == 0 { "even" } else { "odd" };
        store
            .ingest(event(&format!("d-{i}"), kind, at), vec![task(kind, 0, at)])
            .await
            .unwrap();
    }
    let page = |limit, offset| Page { limit, offset };
    let all = store
        .list_events(&EventFilter::default(), page(50, 0))
        .await
        .unwrap();
    let ids: Vec<_> = all.iter().map(|e| e.delivery_id.as_str()).collect();
    assert_eq!(ids, ["d-4", "d-3", "d-2", "d-1", "d-0"]);
    let filter = EventFilter {
        event_type: Some("even".into()),
        processed: Some(false),
    };
    let even = store.list_events(&filter, page(1, 1)).await.unwrap();
    assert_eq!(
        even.iter()
            .map(|e| e.delivery_id.as_str())
            .collect::<Vec<_>>(),
        ["d-2"]
    );
    let processed = EventFilter {
        processed: Some(true),
        ..EventFilter::default()
    };
    assert!(
        store
            .list_events(&processed, page(50, 0))
            .await
            .unwrap()
            .is_empty()
    );

    let odd = TaskFilter {
        task_type: Some(TaskType::new("odd").unwrap()),
        ..TaskFilter::default()
    };
    let tasks = store.list_tasks(&odd, page(50, 0)).await.unwrap();
    assert_eq!(tasks.len(), 2);
    assert!(tasks[0].created_at > tasks[1].created_at);
    let running = TaskFilter {
        status: Some(TaskStatus::Running),
        ..TaskFilter::default()
    };
    assert!(
        store
            .list_tasks(&running, page(50, 0))
            .await
            .unwrap()
            .is_empty()
    );
    let elsewhere = TaskFilter {
        repository: Some("other/repo".into()),
        ..TaskFilter::default()
    };
    assert!(
        store
            .list_tasks(&elsewhere, page(50, 0))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .list_tasks(&TaskFilter::default(), page(2, 4))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn depth_stale_runnable_backend_and_ping() {
    let store = MemoryStore::new();
    let now = t0();
    let later = clock::add(now, secs(60));
    let (_, ids) = ingest(
        &store,
        "d-1",
        vec![task("a", 0, now), task("b", 0, now), task("c", 0, later)],
        now,
    )
    .await;
    claim_one(&store, "w", now).await;
    let depth = store.queue_depth(now).await.unwrap();
    assert_eq!(
        (
            depth.ready,
            depth.scheduled,
            depth.running,
            depth.dead_letter
        ),
        (1, 1, 1, 0)
    );
    let stale = store
        .stale_runnable(clock::add(now, secs(1)), now, 10)
        .await
        .unwrap();
    assert_eq!(stale, vec![ids[1]]);
    assert!(
        store.stale_runnable(now, now, 10).await.unwrap().is_empty(),
        "changed at `now`, not before"
    );
    assert_eq!(
        store
            .stale_runnable(clock::add(later, secs(1)), later, 1)
            .await
            .unwrap(),
        vec![ids[1]]
    );
    store.ping().await.unwrap();
    let queue = StoreQueue::new(Arc::new(store));
    assert_eq!(queue.backend(), "memory");
    queue.publish(&[]).await.unwrap();
}

/// The database queue ([`StoreQueue`]) is the store's attempt state machine with durations:
/// what it claims, extends, finishes, requeues and counts is what the store did.
#[tokio::test]
async fn the_store_queue_drives_the_attempt_store() {
    let store = Arc::new(MemoryStore::new());
    let queue = StoreQueue::new(store.clone());
    let now = t0();
    let (_, ids) = ingest(
        &store,
        "d-1",
        vec![task("a", 1, now), task("b", 0, now)],
        now,
    )
    .await;
    assert!(queue.claim("w", 0, LEASE, now).await.unwrap().is_empty());
    let claims = queue.claim("w", 10, LEASE, now).await.unwrap();
    let order: Vec<Uuid> = claims.iter().map(|c| c.task.task_id).collect();
    assert_eq!(order, ids, "priority first");
    assert_eq!(claims[0].lease_expires_at, clock::add(now, LEASE));
    assert_eq!(queue.depth(now).await.unwrap().running, 2);
    let later = clock::add(now, secs(30));
    assert!(queue.extend_lease(&claims[0], LEASE, later).await.unwrap());
    let report = queue
        .finish(
            &claims[0],
            Finish::Completed {
                output: json!({}),
                followups: vec![],
            },
            later,
        )
        .await
        .unwrap();
    assert_eq!(report.status, TaskStatus::Completed);
    // The second claim's lease (not extended) runs out at now + LEASE; the first is finished.
    let expired_at = clock::add(now, LEASE);
    assert_eq!(queue.requeue_expired(expired_at).await.unwrap(), 1);
    assert_eq!(status(&store, ids[1]).await, TaskStatus::Retrying);
    assert_eq!(queue.depth(expired_at).await.unwrap().ready, 1);
}

#[tokio::test]
async fn fake_github_answers_what_it_was_told_and_counts_calls() {
    let gh = FakeGitHub::new();
    let repo = RepoRef::parse("octo/repo").unwrap();
    let file = PullRequestFile {
        filename: "src/lib.rs".into(),
        status: "modified".into(),
        additions: 3,
        deletions: 1,
        changes: 4,
    };
    gh.set_pr_files("octo/repo", 7, vec![file.clone()]);
    assert_eq!(
        gh.pull_request_files(Some(42), &repo, 7).await.unwrap(),
        vec![file]
    );
    assert_eq!(gh.last_installation_id(), Some(42));
    let missing = gh.pull_request_files(None, &repo, 8).await.unwrap_err();
    assert_eq!(
        (missing.kind(), missing.status()),
        (ClientErrorKind::Permanent, Some(404))
    );
    gh.fail_next(
        ClientErrorKind::Retryable { retry_after: None },
        Some(502),
        "bad gateway",
    );
    assert!(
        gh.pull_request_files(None, &repo, 7)
            .await
            .unwrap_err()
            .is_retryable()
    );
    assert!(
        gh.pull_request_files(None, &repo, 7).await.is_ok(),
        "a queued error is used once"
    );
    gh.fail_always(ClientErrorKind::Permanent, Some(401), "bad credentials");
    assert!(gh.check_run(None, &repo, 1).await.is_err());
    assert!(gh.rate_limit().await.is_err());
    gh.recover();
    assert_eq!(gh.rate_limit().await.unwrap().remaining, 5000);
    assert_eq!(
        (
            gh.calls(),
            gh.calls_to("pull_request_files"),
            gh.calls_to("rate_limit")
        ),
        (7, 4, 2)
    );
}

#[tokio::test]
async fn fake_agent_follows_its_script() {
    let agent = FakeAgent::new();
    assert!(agent.is_configured());
    assert!(!FakeAgent::unconfigured().is_configured());
    agent
        .script_statuses(["RUNNING", "COMPLETE"])
        .complete_with("fixed it", vec![]);
    let request = AgentRunRequest {
        prompt: "fix".into(),
        metadata: None,
        repo_id: None,
        model: None,
        agent_type: None,
    };
    let run = agent.create_run(&request).await.unwrap();
    assert_eq!(run.id, 1001);
    assert_eq!(run.outcome(), RunOutcome::InProgress);
    assert_eq!(
        agent.get_run(run.id).await.unwrap().outcome(),
        RunOutcome::InProgress
    );
    let done = agent.get_run(run.id).await.unwrap();
    assert_eq!(
        (done.outcome(), done.result.as_deref()),
        (RunOutcome::Completed, Some("fixed it"))
    );
    assert_eq!(
        agent.get_run(run.id).await.unwrap().outcome(),
        RunOutcome::Completed,
        "the last status repeats"
    );
    assert_eq!(agent.get_run(5).await.unwrap_err().status(), Some(404));
    agent.fail_next_create(ClientErrorKind::Permanent, Some(402), "run limit reached");
    assert_eq!(
        agent.create_run(&request).await.unwrap_err().status(),
        Some(402)
    );
    assert_eq!((agent.create_calls(), agent.get_calls()), (2, 4));
    assert_eq!(agent.requests()[0].prompt, "fix");
}
