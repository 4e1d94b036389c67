//! Many connections at once: exactly-once claiming and racing duplicate deliveries.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use orchestrator_core::queue::TaskQueue;
use orchestrator_core::store::{EventStore, Finish, IngestOutcome, Page, TaskFilter, TaskStore};
use orchestrator_core::task::{NewTask, TaskStatus};
use orchestrator_sqlx::SqlStore;
use serde_json::json;
use uuid::Uuid;

use crate::support::{AsQueue, at, event, task};

/// 8 workers drain `total` tasks; every task is executed exactly once.
pub async fn each_task_runs_exactly_once(store: &SqlStore) {
    let total = 10_000;
    let per_event = 100;
    for e in 0..total / per_event {
        let tasks: Vec<NewTask> = (0..per_event)
            .map(|_| task("push_analysis", 0, at(0)))
            .collect();
        let outcome = store
            .ingest(event(&format!("d-{e}"), "push", at(0)), tasks)
            .await
            .unwrap();
        assert!(matches!(outcome, IngestOutcome::Accepted { .. }));
    }
    let store = Arc::new(store.clone());
    let mut workers = Vec::new();
    for w in 0..8 {
        let store = Arc::clone(&store);
        workers.push(tokio::spawn(async move {
            let worker = format!("w{w}");
            let mut ran = Vec::new();
            loop {
                let claims = store
                    .queue()
                    .claim(&worker, 16, Duration::from_secs(600), at(1))
                    .await
                    .unwrap();
                if claims.is_empty() {
                    break;
                }
                for claim in claims {
                    ran.push(claim.task.task_id);
                    let done = Finish::Completed {
                        output: json!({}),
                        followups: vec![],
                    };
                    store.queue().finish(&claim, done, at(2)).await.unwrap();
                }
            }
            ran
        }));
    }
    let mut seen = HashSet::new();
    let mut executions = 0;
    for worker in workers {
        for id in worker.await.unwrap() {
            executions += 1;
            assert!(seen.insert(id), "task {id} ran twice");
        }
    }
    assert_eq!(executions, total, "every task ran once");
    let stats = store.stats(at(3)).await.unwrap();
    assert_eq!(
        stats.tasks_by_status.get("completed"),
        Some(&(total as u64))
    );
    assert_eq!(stats.task_executions_total, total as u64);
    let open = orchestrator_core::store::EventFilter {
        event_type: None,
        processed: Some(false),
    };
    assert!(
        store
            .list_events(&open, Page::default())
            .await
            .unwrap()
            .is_empty(),
        "every event settled"
    );
}

/// The same delivery from 8 connections at once: one wins, one set of tasks.
pub async fn racing_duplicates_store_one_set(store: &SqlStore) {
    for round in 0..5 {
        let delivery = format!("race-{round}");
        let mut racers = Vec::new();
        for _ in 0..8 {
            let store = store.clone();
            let delivery = delivery.clone();
            racers.push(tokio::spawn(async move {
                let tasks = vec![
                    task("push_analysis", 0, at(0)),
                    task("push_analysis", 0, at(0)),
                ];
                store
                    .ingest(event(&delivery, "push", at(0)), tasks)
                    .await
                    .unwrap()
            }));
        }
        let mut accepted = Vec::new();
        let mut duplicates = Vec::new();
        for racer in racers {
            match racer.await.unwrap() {
                IngestOutcome::Accepted { event_id, .. } => accepted.push(event_id),
                IngestOutcome::Duplicate { event_id } => duplicates.push(event_id),
            }
        }
        assert_eq!(accepted.len(), 1, "exactly one winner");
        assert_eq!(duplicates.len(), 7);
        assert!(
            duplicates.iter().all(|id| *id == accepted[0]),
            "duplicates name the winner"
        );
    }
    let tasks = store
        .list_tasks(
            &TaskFilter::default(),
            Page {
                limit: 1000,
                offset: 0,
            },
        )
        .await
        .unwrap();
    assert_eq!(tasks.len(), 10, "one set of two tasks per delivery");
    assert!(tasks.iter().all(|t| t.status == TaskStatus::Pending));
    let ids: HashSet<Uuid> = tasks.iter().map(|t| t.task_id).collect();
    assert_eq!(ids.len(), 10);
}
