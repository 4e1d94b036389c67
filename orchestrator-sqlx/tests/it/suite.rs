//! The behaviours every database must show, written once and run against each (see `main.rs`).

use std::time::Duration;

use orchestrator_core::error::StoreErrorKind;
use orchestrator_core::event::NewEvent;
use orchestrator_core::queue::TaskQueue;
use orchestrator_core::store::{
    AttemptStore, BatchStore, EventFilter, EventStore, ExternalRun, Finish, IngestOutcome, Page,
    ReprocessOutcome, RetentionPolicy, RetryOutcome, TaskFilter, TaskStore,
};
use orchestrator_core::task::{ExecutionStatus, NewTask, TaskStatus, TaskType};
use orchestrator_sqlx::SqlStore;
use serde_json::json;
use uuid::Uuid;

use crate::support::{AsQueue, at, event, prepared, task};

const LEASE: Duration = Duration::from_secs(30);

async fn accept(store: &SqlStore, new: NewEvent, tasks: Vec<NewTask>) -> (i64, Vec<Uuid>) {
    match store.ingest(new, tasks).await.expect("ingest") {
        IngestOutcome::Accepted {
            event_id, task_ids, ..
        } => (event_id, task_ids),
        other => panic!("expected accepted, got {other:?}"),
    }
}

pub async fn ingest_commits_event_and_tasks(store: &SqlStore) {
    let new = event("d-1", "pull_request", at(0));
    let payload = new.payload.clone();
    let tasks = vec![
        task("pull_request_analysis", 5, at(0)),
        task("push_analysis", 0, at(0)),
    ];
    let ids: Vec<Uuid> = tasks.iter().map(|t| t.task_id).collect();
    let (event_id, task_ids) = accept(store, new.clone(), tasks).await;
    assert_eq!(task_ids, ids);

    let stored = store
        .get_event(event_id)
        .await
        .unwrap()
        .expect("event stored");
    assert_eq!(stored.payload, payload, "payload kept byte for byte");
    assert_eq!(stored.headers, new.headers);
    assert_eq!(stored.delivery_id, "d-1");
    assert_eq!(stored.installation_id, Some(42));
    assert!(!stored.processed);
    assert_eq!(stored.processing_started_at, None);
    assert_eq!(stored.created_at, at(0));

    let listed = store
        .list_tasks(&TaskFilter::default(), Page::default())
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].task_id, ids[1], "newest first");
    let first = store.get_task(ids[0]).await.unwrap().expect("task");
    assert_eq!(first.task.status, TaskStatus::Pending);
    assert_eq!(first.task.webhook_event_id, Some(event_id));
    assert_eq!(first.task.priority, 5);
    assert_eq!(first.task.pr_number, Some(7));
    assert_eq!(first.task.input_data, json!({"number": 7}));
    assert_eq!(first.task.config, json!({}));
    assert_eq!(first.task.max_retries, 2);
    assert!(first.executions.is_empty());
}

pub async fn event_without_tasks_is_processed(store: &SqlStore) {
    let (id, tasks) = accept(store, event("d-1", "ping", at(0)), vec![]).await;
    assert!(tasks.is_empty());
    let stored = store.get_event(id).await.unwrap().unwrap();
    assert!(stored.processed);
    assert_eq!(stored.processing_completed_at, Some(at(0)));
}

pub async fn duplicate_delivery_changes_nothing(store: &SqlStore) {
    let (id, _) = accept(
        store,
        event("d-1", "push", at(0)),
        vec![task("push_analysis", 0, at(0))],
    )
    .await;
    let again = store
        .ingest(
            event("d-1", "push", at(5)),
            vec![task("push_analysis", 0, at(5))],
        )
        .await
        .unwrap();
    assert_eq!(again, IngestOutcome::Duplicate { event_id: id });
    let tasks = store
        .list_tasks(&TaskFilter::default(), Page::default())
        .await
        .unwrap();
    assert_eq!(tasks.len(), 1, "the duplicate added no task");
    assert_eq!(
        store.get_event(id).await.unwrap().unwrap().created_at,
        at(0)
    );
}

pub async fn failed_task_insert_leaves_no_event(store: &SqlStore) {
    let one = task("push_analysis", 0, at(0));
    let mut twin = task("push_analysis", 0, at(0));
    twin.task_id = one.task_id;
    let err = store
        .ingest(event("d-1", "push", at(0)), vec![one, twin])
        .await
        .expect_err("duplicate task id");
    assert_eq!(err.kind(), StoreErrorKind::Conflict);
    let events = store
        .list_events(&EventFilter::default(), Page::default())
        .await
        .unwrap();
    assert!(
        events.is_empty(),
        "no event row without its tasks: {events:?}"
    );
    assert!(
        store
            .list_tasks(&TaskFilter::default(), Page::default())
            .await
            .unwrap()
            .is_empty()
    );
    // The delivery can be ingested afterwards.
    accept(
        store,
        event("d-1", "push", at(1)),
        vec![task("push_analysis", 0, at(1))],
    )
    .await;
}

pub async fn lists_filter_and_page(store: &SqlStore) {
    let (push, _) = accept(
        store,
        event("d-1", "push", at(0)),
        vec![task("push_analysis", 0, at(0))],
    )
    .await;
    let (ping, _) = accept(store, event("d-2", "ping", at(1)), vec![]).await;
    let mut other = task("codegen_trigger", 0, at(2));
    other.spec.repository = Some("octo/other".to_owned());
    let (pr, _) = accept(store, event("d-3", "pull_request", at(2)), vec![other]).await;

    let ids = |list: Vec<orchestrator_core::event::EventSummary>| {
        list.into_iter().map(|e| e.id).collect::<Vec<_>>()
    };
    let all = store
        .list_events(&EventFilter::default(), Page::default())
        .await
        .unwrap();
    assert_eq!(ids(all), vec![pr, ping, push]);
    let pushes = EventFilter {
        event_type: Some("push".into()),
        processed: None,
    };
    assert_eq!(
        ids(store.list_events(&pushes, Page::default()).await.unwrap()),
        vec![push]
    );
    let done = EventFilter {
        event_type: None,
        processed: Some(true),
    };
    assert_eq!(
        ids(store.list_events(&done, Page::default()).await.unwrap()),
        vec![ping]
    );
    let open = EventFilter {
        event_type: None,
        processed: Some(false),
    };
    assert_eq!(
        ids(store.list_events(&open, Page::default()).await.unwrap()),
        vec![pr, push]
    );
    let page = Page {
        limit: 1,
        offset: 1,
    };
    assert_eq!(
        ids(store
            .list_events(&EventFilter::default(), page)
            .await
            .unwrap()),
        vec![ping]
    );

    let by_type = TaskFilter {
        task_type: Some(TaskType::CODEGEN_TRIGGER),
        ..TaskFilter::default()
    };
    assert_eq!(
        store
            .list_tasks(&by_type, Page::default())
            .await
            .unwrap()
            .len(),
        1
    );
    let by_repo = TaskFilter {
        repository: Some("octo/repo".into()),
        ..TaskFilter::default()
    };
    let repo_tasks = store.list_tasks(&by_repo, Page::default()).await.unwrap();
    assert_eq!(repo_tasks.len(), 1);
    assert_eq!(repo_tasks[0].task_type, TaskType::PUSH_ANALYSIS);
    store.queue().claim("w", 1, LEASE, at(10)).await.unwrap();
    let running = TaskFilter {
        status: Some(TaskStatus::Running),
        ..TaskFilter::default()
    };
    assert_eq!(
        store
            .list_tasks(&running, Page::default())
            .await
            .unwrap()
            .len(),
        1
    );
    let pending = TaskFilter {
        status: Some(TaskStatus::Pending),
        ..TaskFilter::default()
    };
    assert_eq!(
        store
            .list_tasks(&pending, Page::default())
            .await
            .unwrap()
            .len(),
        1
    );
    let none = TaskFilter {
        status: Some(TaskStatus::Failed),
        ..TaskFilter::default()
    };
    assert!(
        store
            .list_tasks(&none, Page::default())
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn claim_takes_due_tasks_in_order(store: &SqlStore) {
    let low = task("push_analysis", 0, at(0));
    let high = task("push_analysis", 9, at(5));
    let later = task("push_analysis", 100, at(60));
    let (low_id, high_id, later_id) = (low.task_id, high.task_id, later.task_id);
    let (event_id, _) = accept(store, event("d-1", "push", at(0)), vec![low, high, later]).await;

    let claims = store.queue().claim("w1", 10, LEASE, at(10)).await.unwrap();
    let order: Vec<Uuid> = claims.iter().map(|c| c.task.task_id).collect();
    assert_eq!(
        order,
        vec![high_id, low_id],
        "priority first; not-yet-due task left"
    );
    let claim = &claims[0];
    assert_eq!(claim.attempt, 1);
    assert_eq!(claim.worker_id, "w1");
    assert_eq!(claim.lease_expires_at, at(40));
    assert_eq!(claim.task.status, TaskStatus::Running);
    assert_eq!(claim.task.started_at, Some(at(10)));
    assert!(
        store
            .queue()
            .claim("w2", 10, LEASE, at(20))
            .await
            .unwrap()
            .is_empty(),
        "nothing due left"
    );

    let detail = store.get_task(high_id).await.unwrap().unwrap();
    assert_eq!(detail.task.lease_owner.as_deref(), Some("w1"));
    assert_eq!(detail.task.attempts, 1);
    assert_eq!(detail.executions.len(), 1);
    assert_eq!(detail.executions[0].execution_id, claim.execution_id);
    assert_eq!(detail.executions[0].status, ExecutionStatus::Running);
    let stored = store.get_event(event_id).await.unwrap().unwrap();
    assert_eq!(stored.processing_started_at, Some(at(10)));

    let depth = store.queue().depth(at(20)).await.unwrap();
    assert_eq!((depth.ready, depth.scheduled, depth.running), (0, 1, 2));
    let late = store.queue().claim("w3", 10, LEASE, at(60)).await.unwrap();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].task.task_id, later_id);
}

pub async fn completion_settles_event_after_followups(store: &SqlStore) {
    let (event_id, _) = accept(
        store,
        event("d-1", "pull_request", at(0)),
        vec![task("pull_request_analysis", 0, at(0))],
    )
    .await;
    let claim = store
        .queue()
        .claim("w", 1, LEASE, at(1))
        .await
        .unwrap()
        .remove(0);
    let followup = task("codegen_trigger", 0, at(3));
    let followup_id = followup.task_id;
    let report = store
        .queue()
        .finish(
            &claim,
            Finish::Completed {
                output: json!({"ok": true}),
                followups: vec![followup],
            },
            at(3),
        )
        .await
        .unwrap();
    assert_eq!(report.status, TaskStatus::Completed);
    assert_eq!(report.followups, vec![followup_id]);
    let done = store.get_task(claim.task.task_id).await.unwrap().unwrap();
    assert_eq!(done.task.output_data, Some(json!({"ok": true})));
    assert_eq!(done.task.completed_at, Some(at(3)));
    assert_eq!(done.task.lease_owner, None);
    assert_eq!(done.executions[0].status, ExecutionStatus::Completed);
    assert_eq!(done.executions[0].duration_ms, Some(2000));
    assert!(
        !store.get_event(event_id).await.unwrap().unwrap().processed,
        "follow-up still open"
    );

    let next = store
        .queue()
        .claim("w", 5, LEASE, at(4))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(next.task.task_id, followup_id);
    assert_eq!(next.task.parent_task_id, Some(claim.task.task_id));
    assert_eq!(next.task.webhook_event_id, Some(event_id));
    store
        .queue()
        .finish(
            &next,
            Finish::Completed {
                output: json!(null),
                followups: vec![],
            },
            at(6),
        )
        .await
        .unwrap();
    let settled = store.get_event(event_id).await.unwrap().unwrap();
    assert!(settled.processed);
    assert_eq!(settled.processing_completed_at, Some(at(6)));
    assert_eq!(settled.error_message, None);
}

pub async fn retry_then_failure(store: &SqlStore) {
    let (event_id, ids) = accept(
        store,
        event("d-1", "push", at(0)),
        vec![task("push_analysis", 0, at(0))],
    )
    .await;
    let claim = store
        .queue()
        .claim("w", 1, LEASE, at(1))
        .await
        .unwrap()
        .remove(0);
    let report = store
        .queue()
        .finish(
            &claim,
            Finish::Retry {
                error: "503".into(),
                at: at(100),
            },
            at(2),
        )
        .await
        .unwrap();
    assert_eq!(
        (report.status, report.run_at),
        (TaskStatus::Retrying, Some(at(100)))
    );
    let t = store.get_task(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (t.task.retry_count, t.task.error_message.as_deref()),
        (1, Some("503"))
    );
    assert_eq!(t.executions[0].status, ExecutionStatus::Failed);
    assert_eq!(t.executions[0].error_message.as_deref(), Some("503"));
    assert!(
        store
            .queue()
            .claim("w", 1, LEASE, at(99))
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );

    let second = store
        .queue()
        .claim("w", 1, LEASE, at(100))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(second.attempt, 2);
    let report = store
        .queue()
        .finish(
            &second,
            Finish::Failed {
                error: "boom".into(),
            },
            at(101),
        )
        .await
        .unwrap();
    assert_eq!((report.status, report.run_at), (TaskStatus::Failed, None));
    let stored = store.get_event(event_id).await.unwrap().unwrap();
    assert!(stored.processed);
    assert_eq!(stored.error_message.as_deref(), Some("boom"));
    let t = store.get_task(ids[0]).await.unwrap().unwrap();
    assert_eq!(t.executions.len(), 2);
    assert_eq!(t.task.completed_at, Some(at(101)));
}

pub async fn defer_and_release_use_no_attempt(store: &SqlStore) {
    let (_, ids) = accept(
        store,
        event("d-1", "push", at(0)),
        vec![task("push_analysis", 0, at(0))],
    )
    .await;
    let claim = store
        .queue()
        .claim("w", 1, LEASE, at(1))
        .await
        .unwrap()
        .remove(0);
    let deferred = Finish::Deferred {
        at: at(50),
        reason: "breaker open".into(),
        output: Some(json!({"poll": 1})),
    };
    let report = store.queue().finish(&claim, deferred, at(2)).await.unwrap();
    assert_eq!(
        (report.status, report.run_at),
        (TaskStatus::Pending, Some(at(50)))
    );
    let t = store.get_task(ids[0]).await.unwrap().unwrap();
    assert_eq!(t.task.retry_count, 0);
    assert_eq!(t.task.output_data, Some(json!({"poll": 1})));
    assert_eq!(t.executions[0].status, ExecutionStatus::Deferred);
    assert_eq!(
        t.executions[0].error_message.as_deref(),
        Some("breaker open")
    );

    let claim = store
        .queue()
        .claim("w", 1, LEASE, at(50))
        .await
        .unwrap()
        .remove(0);
    let report = store
        .queue()
        .finish(&claim, Finish::Released, at(51))
        .await
        .unwrap();
    assert_eq!(
        (report.status, report.run_at),
        (TaskStatus::Pending, Some(at(51)))
    );
    let t = store.get_task(ids[0]).await.unwrap().unwrap();
    assert_eq!(t.executions[1].status, ExecutionStatus::Released);
    assert_eq!(t.task.output_data, Some(json!({"poll": 1})), "kept");
    assert_eq!(
        store
            .queue()
            .claim("w", 1, LEASE, at(51))
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn crashed_worker_task_is_claimed_again(store: &SqlStore) {
    let (_, ids) = accept(
        store,
        event("d-1", "push", at(0)),
        vec![task("push_analysis", 0, at(0))],
    )
    .await;
    let lost = store
        .queue()
        .claim("crashed", 1, LEASE, at(1))
        .await
        .unwrap()
        .remove(0);
    assert!(
        store
            .queue()
            .claim("other", 1, LEASE, at(30))
            .await
            .unwrap()
            .is_empty(),
        "lease still held"
    );
    assert_eq!(
        store.queue().requeue_expired(at(30)).await.unwrap(),
        0,
        "not expired yet"
    );
    assert_eq!(store.expire_leases(at(31)).await.unwrap(), vec![ids[0]]);
    let again = store
        .queue()
        .claim("other", 1, LEASE, at(31))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(again.task.task_id, ids[0]);
    assert_eq!(again.attempt, 2);
    let t = store.get_task(ids[0]).await.unwrap().unwrap();
    assert_eq!(t.executions[0].status, ExecutionStatus::Abandoned);
    assert_eq!(t.task.retry_count, 1);

    let err = store
        .queue()
        .finish(
            &lost,
            Finish::Completed {
                output: json!(1),
                followups: vec![],
            },
            at(32),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        StoreErrorKind::Conflict,
        "the crashed claim lost the task"
    );
    assert!(
        !TaskQueue::extend_lease(&store.queue(), &lost, LEASE, at(32))
            .await
            .unwrap()
    );
    assert!(
        TaskQueue::extend_lease(&store.queue(), &again, LEASE, at(32))
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
        Some(at(62))
    );
}

pub async fn expired_lease_without_retries_fails(store: &SqlStore) {
    let mut only = task("push_analysis", 0, at(0));
    only.max_retries = 0;
    let (event_id, ids) = accept(store, event("d-1", "push", at(0)), vec![only]).await;
    store
        .queue()
        .claim("crashed", 1, LEASE, at(1))
        .await
        .unwrap();
    assert!(store.expire_leases(at(40)).await.unwrap().is_empty());
    let t = store.get_task(ids[0]).await.unwrap().unwrap();
    assert_eq!(t.task.status, TaskStatus::Failed);
    let stored = store.get_event(event_id).await.unwrap().unwrap();
    assert!(stored.processed);
    assert!(stored.error_message.unwrap_or_default().contains("crashed"));
}

pub async fn manual_retry_and_reprocess(store: &SqlStore) {
    let (event_id, ids) = accept(
        store,
        event("d-1", "push", at(0)),
        vec![task("push_analysis", 0, at(0))],
    )
    .await;
    assert_eq!(
        store.retry_task(ids[0], at(1)).await.unwrap(),
        RetryOutcome::NotRetryable(TaskStatus::Pending)
    );
    assert_eq!(
        store.retry_task(Uuid::now_v7(), at(1)).await.unwrap(),
        RetryOutcome::NotFound
    );
    let claim = store
        .queue()
        .claim("w", 1, LEASE, at(1))
        .await
        .unwrap()
        .remove(0);
    store
        .queue()
        .finish(
            &claim,
            Finish::Failed {
                error: "bad".into(),
            },
            at(2),
        )
        .await
        .unwrap();
    assert!(store.get_event(event_id).await.unwrap().unwrap().processed);

    let RetryOutcome::Scheduled(task) = store.retry_task(ids[0], at(5)).await.unwrap() else {
        panic!("retry")
    };
    assert_eq!(
        (task.status, task.run_at, task.retry_count),
        (TaskStatus::Pending, at(5), 0)
    );
    assert!(!store.get_event(event_id).await.unwrap().unwrap().processed);
    let claim = store
        .queue()
        .claim("w", 1, LEASE, at(5))
        .await
        .unwrap()
        .remove(0);
    store
        .queue()
        .finish(
            &claim,
            Finish::Completed {
                output: json!({}),
                followups: vec![],
            },
            at(6),
        )
        .await
        .unwrap();
    let stored = store.get_event(event_id).await.unwrap().unwrap();
    assert!(stored.processed);
    assert_eq!(stored.error_message, None);

    let fresh = task_of("push_analysis", at(7));
    let fresh_id = fresh.task_id;
    let outcome = store
        .reprocess_event(event_id, vec![fresh], at(7))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ReprocessOutcome::Reprocessed {
            event_id,
            task_ids: vec![fresh_id]
        }
    );
    let stored = store.get_event(event_id).await.unwrap().unwrap();
    assert!(!stored.processed);
    assert_eq!(stored.retry_count, 1);
    // Its new task is open: a second reprocess is refused, naming it, and adds nothing.
    let again = task_of("push_analysis", at(8));
    assert_eq!(
        store
            .reprocess_event(event_id, vec![again], at(8))
            .await
            .unwrap(),
        ReprocessOutcome::Busy {
            event_id,
            open_tasks: vec![fresh_id]
        }
    );
    assert_eq!(
        store
            .get_event(event_id)
            .await
            .unwrap()
            .unwrap()
            .retry_count,
        1
    );
    assert_eq!(
        store
            .reprocess_event(9_999_999, vec![], at(7))
            .await
            .unwrap(),
        ReprocessOutcome::NotFound
    );
}

fn task_of(task_type: &str, run_at: chrono::DateTime<chrono::Utc>) -> NewTask {
    task(task_type, 0, run_at)
}

pub async fn external_run_recorded_on_task_and_parent(store: &SqlStore) {
    let (_, ids) = accept(
        store,
        event("d-1", "pull_request", at(0)),
        vec![task("pull_request_analysis", 0, at(0))],
    )
    .await;
    let claim = store
        .queue()
        .claim("w", 1, LEASE, at(1))
        .await
        .unwrap()
        .remove(0);
    let child = task("codegen_trigger", 0, at(2));
    let child_id = child.task_id;
    store
        .queue()
        .finish(
            &claim,
            Finish::Completed {
                output: json!({}),
                followups: vec![child],
            },
            at(2),
        )
        .await
        .unwrap();
    let run = ExternalRun {
        id: "run-1".into(),
        url: Some("https://example.test/run-1".into()),
    };
    store
        .record_external_run(child_id, &run, at(3))
        .await
        .unwrap();
    for id in [child_id, ids[0]] {
        let t = store.get_task(id).await.unwrap().unwrap().task;
        assert_eq!(t.codegen_task_id.as_deref(), Some("run-1"));
        assert_eq!(
            t.codegen_task_url.as_deref(),
            Some("https://example.test/run-1")
        );
    }
    assert!(
        store
            .record_external_run(Uuid::now_v7(), &run, at(3))
            .await
            .is_err()
    );
}

pub async fn start_attempt_takes_a_task_once(store: &SqlStore) {
    let (_, ids) = accept(
        store,
        event("d-1", "push", at(0)),
        vec![task("push_analysis", 0, at(10))],
    )
    .await;
    assert!(
        store
            .start_attempt(ids[0], "w", at(40), at(5))
            .await
            .unwrap()
            .is_none(),
        "not due"
    );
    let claim = store
        .start_attempt(ids[0], "w", at(40), at(10))
        .await
        .unwrap()
        .expect("claimed");
    assert_eq!(claim.lease_expires_at, at(40));
    assert!(
        store
            .start_attempt(ids[0], "w2", at(40), at(11))
            .await
            .unwrap()
            .is_none(),
        "already taken"
    );
    assert!(
        store
            .start_attempt(Uuid::now_v7(), "w", at(40), at(11))
            .await
            .unwrap()
            .is_none()
    );
    store
        .finish_attempt(
            &claim,
            Finish::Completed {
                output: json!({}),
                followups: vec![],
            },
            at(12),
        )
        .await
        .unwrap();
}

pub async fn stats_and_stale(store: &SqlStore) {
    accept(
        store,
        event("d-1", "push", at(0)),
        vec![task("push_analysis", 0, at(0))],
    )
    .await;
    accept(
        store,
        event("d-2", "push", at(1)),
        vec![task("push_analysis", 0, at(1))],
    )
    .await;
    accept(store, event("d-3", "ping", at(2)), vec![]).await;
    let mut claims = store.queue().claim("w", 2, LEASE, at(3)).await.unwrap();
    let b = claims.pop().unwrap();
    let a = claims.pop().unwrap();
    store
        .queue()
        .finish(
            &a,
            Finish::Completed {
                output: json!({}),
                followups: vec![],
            },
            at(4),
        )
        .await
        .unwrap();
    store
        .queue()
        .finish(&b, Finish::Failed { error: "x".into() }, at(6))
        .await
        .unwrap();

    let stats = store.stats(at(3600)).await.unwrap();
    assert_eq!(stats.webhook_events_total, 3);
    assert_eq!(stats.workflow_tasks_total, 2);
    assert_eq!(stats.task_executions_total, 2);
    assert_eq!(stats.avg_processing_time_ms, Some(2000.0));
    assert_eq!(stats.tasks_by_status.get("completed"), Some(&1));
    assert_eq!(stats.tasks_by_status.get("failed"), Some(&1));
    assert_eq!(stats.tasks_by_status.get("cancelled"), Some(&0));
    assert_eq!(stats.events_by_type.get("push"), Some(&2));
    assert_eq!((stats.webhooks_24h, stats.tasks_24h), (3, 2));
    assert_eq!((stats.failed_webhooks_24h, stats.failed_tasks_24h), (1, 1));
    let later = store.stats(at(2 * 86_400)).await.unwrap();
    assert_eq!((later.webhooks_24h, later.tasks_24h), (0, 0));

    let (_, ids) = accept(
        store,
        event("d-4", "push", at(10)),
        vec![task("push_analysis", 0, at(10))],
    )
    .await;
    assert_eq!(store.stale_runnable(at(11), at(20), 10).await.unwrap(), ids);
    assert!(
        store
            .stale_runnable(at(10), at(20), 10)
            .await
            .unwrap()
            .is_empty(),
        "changed at 10"
    );
}

pub async fn cleanup_keeps_what_can_still_run(store: &SqlStore) {
    let day = 86_400;
    let (old_done, _) = accept(
        store,
        event("d-1", "push", at(0)),
        vec![task("push_analysis", 0, at(0))],
    )
    .await;
    let c = store
        .queue()
        .claim("w", 1, LEASE, at(1))
        .await
        .unwrap()
        .remove(0);
    store
        .queue()
        .finish(
            &c,
            Finish::Completed {
                output: json!({}),
                followups: vec![],
            },
            at(2),
        )
        .await
        .unwrap();
    let (old_open, open_ids) = accept(
        store,
        event("d-2", "push", at(3)),
        vec![task("push_analysis", 0, at(3 + 30 * day))],
    )
    .await;
    let (old_ping, _) = accept(store, event("d-3", "ping", at(4)), vec![]).await;
    let (new_ping, _) = accept(store, event("d-4", "ping", at(9 * day)), vec![]).await;

    let report = store
        .cleanup(&RetentionPolicy::default(), at(10 * day))
        .await
        .unwrap();
    assert_eq!(
        (
            report.events_deleted,
            report.tasks_deleted,
            report.executions_deleted
        ),
        (2, 1, 1)
    );
    assert!(store.get_event(old_done).await.unwrap().is_none());
    assert!(store.get_event(old_ping).await.unwrap().is_none());
    assert!(
        store.get_event(old_open).await.unwrap().is_some(),
        "unprocessed event kept"
    );
    assert!(
        store.get_task(open_ids[0]).await.unwrap().is_some(),
        "runnable task kept"
    );
    assert!(
        store.get_event(new_ping).await.unwrap().is_some(),
        "recent event kept"
    );
    let again = store
        .cleanup(&RetentionPolicy::default(), at(10 * day))
        .await
        .unwrap();
    assert_eq!(again, Default::default());
}

pub async fn ping_and_backend(store: &SqlStore) {
    store.ping().await.unwrap();
    assert_eq!(store.queue().backend(), "database");
    assert!(store.connections_active() <= 20);
}

pub async fn batch_ingest_keeps_each_delivery_atomic(store: &SqlStore) {
    let a = (
        event("d-a", "push", at(0)),
        vec![task("push_analysis", 0, at(0))],
    );
    let a_again = (
        event("d-a", "push", at(0)),
        vec![task("push_analysis", 0, at(0))],
    );
    let b = (event("d-b", "ping", at(0)), vec![]);
    let outcomes = store
        .ingest_batch(prepared(store, vec![a, a_again, b]))
        .await;
    assert_eq!(outcomes.len(), 3);
    let Ok(IngestOutcome::Accepted { event_id: a_id, .. }) = outcomes[0] else {
        panic!("{outcomes:?}")
    };
    assert_eq!(
        outcomes[1].as_ref().unwrap(),
        &IngestOutcome::Duplicate { event_id: a_id }
    );
    assert!(matches!(outcomes[2], Ok(IngestOutcome::Accepted { .. })));

    // One delivery whose tasks conflict fails alone; the others of its batch are stored.
    let existing = store
        .list_tasks(&TaskFilter::default(), Page::default())
        .await
        .unwrap()[0]
        .task_id;
    let mut clash = task("push_analysis", 0, at(1));
    clash.task_id = existing;
    let c = (
        event("d-c", "push", at(1)),
        vec![task("push_analysis", 0, at(1))],
    );
    let bad = (event("d-bad", "push", at(1)), vec![clash]);
    let d = (
        event("d-d", "push", at(1)),
        vec![task("push_analysis", 0, at(1))],
    );
    let outcomes = store.ingest_batch(prepared(store, vec![c, bad, d])).await;
    assert!(
        matches!(outcomes[0], Ok(IngestOutcome::Accepted { .. })),
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes[1].as_ref().unwrap_err().kind(),
        StoreErrorKind::Conflict
    );
    assert!(
        matches!(outcomes[2], Ok(IngestOutcome::Accepted { .. })),
        "{outcomes:?}"
    );
    let events = store
        .list_events(&EventFilter::default(), Page::default())
        .await
        .unwrap();
    let deliveries: Vec<&str> = events.iter().map(|e| e.delivery_id.as_str()).collect();
    assert_eq!(
        deliveries,
        vec!["d-d", "d-c", "d-b", "d-a"],
        "no event for the failed delivery"
    );
    assert_eq!(
        store
            .list_tasks(&TaskFilter::default(), Page::default())
            .await
            .unwrap()
            .len(),
        3
    );
}
