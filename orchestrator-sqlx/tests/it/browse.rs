//! Keyset-paged lists (`BrowseStore`): filters, newest first, and pages that neither repeat nor
//! skip a row while new rows arrive. The same body runs on PostgreSQL, SQLite and the in-memory
//! reference store.

use orchestrator_core::store::EventStore;
use orchestrator_core::store::IngestOutcome;
use orchestrator_core::store::browse::{BrowseStore, Cursor, EventQuery, TaskQuery};
use orchestrator_core::store::cancel::CancelStore;
use orchestrator_core::store::supersede::{PrHead, SupersedeRequest};
use orchestrator_core::task::{TaskStatus, TaskType};

use crate::support::{at, event, task};

pub async fn pages_by_cursor_stay_stable_while_rows_arrive<
    S: EventStore + BrowseStore + CancelStore,
>(
    store: &S,
) {
    let mut event_ids = Vec::new();
    // Five deliveries, the last two at the same instant (the row id breaks the tie).
    for (i, secs) in [0, 1, 2, 3, 3].into_iter().enumerate() {
        let mut new = event(&format!("d-{i}"), "pull_request", at(secs));
        if i == 1 {
            new.repository = Some("octo/other".to_owned());
            new.action = Some("closed".to_owned());
        }
        let mut spec = task("pull_request_analysis", 0, at(secs));
        spec.spec.pr_number = Some(i as i64);
        match store.ingest(new, vec![spec]).await.unwrap() {
            IngestOutcome::Accepted { event_id, .. } => event_ids.push(event_id),
            other => panic!("{other:?}"),
        }
    }
    let page = |after: Option<Cursor>| EventQuery {
        after,
        limit: 2,
        ..EventQuery::default()
    };
    let first = store.browse_events(&page(None)).await.unwrap();
    let ids: Vec<i64> = first.iter().map(|r| r.summary.id).collect();
    assert_eq!(
        ids,
        vec![event_ids[4], event_ids[3]],
        "newest first, id breaks the tie"
    );
    assert_eq!(first[0].repository.as_deref(), Some("octo/repo"));

    // A delivery arrives between the pages: the next page starts where the first stopped.
    store
        .ingest(event("d-new", "push", at(10)), vec![])
        .await
        .unwrap();
    let last = &first[1].summary;
    let second = store
        .browse_events(&page(Some(Cursor::after(last.created_at, last.id))))
        .await
        .unwrap();
    let ids: Vec<i64> = second.iter().map(|r| r.summary.id).collect();
    assert_eq!(ids, vec![event_ids[2], event_ids[1]]);

    let filtered = |q: EventQuery| async move {
        store
            .browse_events(&EventQuery { limit: 50, ..q })
            .await
            .unwrap()
            .iter()
            .map(|r| r.summary.id)
            .collect::<Vec<_>>()
    };
    let other = filtered(EventQuery {
        repository: Some("octo/other".into()),
        ..EventQuery::default()
    });
    assert_eq!(other.await, vec![event_ids[1]]);
    let closed = filtered(EventQuery {
        action: Some("closed".into()),
        ..EventQuery::default()
    });
    assert_eq!(closed.await, vec![event_ids[1]]);
    let by_guid = filtered(EventQuery {
        delivery_id: Some("d-2".into()),
        ..EventQuery::default()
    });
    assert_eq!(by_guid.await, vec![event_ids[2]]);
    let window = filtered(EventQuery {
        since: Some(at(1)),
        until: Some(at(3)),
        event_type: Some("pull_request".into()),
        processed: Some(false),
        ..EventQuery::default()
    });
    assert_eq!(window.await, vec![event_ids[2], event_ids[1]]);

    // Tasks: by pull request, by event, by status and type, paged the same way.
    let tasks = |q: TaskQuery| async move {
        store
            .browse_tasks(&TaskQuery { limit: 50, ..q })
            .await
            .unwrap()
    };
    let pr3 = tasks(TaskQuery {
        pr_number: Some(3),
        ..TaskQuery::default()
    })
    .await;
    assert_eq!(pr3.len(), 1);
    assert_eq!(pr3[0].webhook_event_id, Some(event_ids[3]));
    let of_event = tasks(TaskQuery {
        webhook_event_id: Some(event_ids[0]),
        ..TaskQuery::default()
    })
    .await;
    assert_eq!(of_event.len(), 1);
    assert_eq!(of_event[0].pr_number, Some(0));
    let pending = tasks(TaskQuery {
        status: Some(TaskStatus::Pending),
        task_type: Some(TaskType::new("pull_request_analysis").unwrap()),
        repository: Some("octo/repo".into()),
        ..TaskQuery::default()
    })
    .await;
    assert_eq!(pending.len(), 5);
    let oldest_two = tasks(TaskQuery {
        after: Some(Cursor::after(pending[2].created_at, pending[2].id)),
        ..TaskQuery::default()
    })
    .await;
    let ids: Vec<_> = oldest_two.iter().map(|t| t.task_id).collect();
    assert_eq!(ids, vec![pending[3].task_id, pending[4].task_id]);
    let none = tasks(TaskQuery {
        status: Some(TaskStatus::Failed),
        ..TaskQuery::default()
    })
    .await;
    assert!(none.is_empty());

    // A newer head of pull request 4 supersedes its task (by the task of pull request 3, as a
    // stand-in for the new work): only it is `superseded`, every other task is not.
    let newer = pr3[0].task_id;
    store
        .supersede(
            &SupersedeRequest {
                head: PrHead {
                    repository: "octo/repo".into(),
                    pr_number: 4,
                    head_sha: "def456".into(),
                    head_at: at(100),
                },
                new_tasks: vec![(newer, TaskType::new("pull_request_analysis").unwrap())],
                running: false,
            },
            at(100),
        )
        .await
        .unwrap();
    let superseded = tasks(TaskQuery {
        superseded: Some(true),
        ..TaskQuery::default()
    })
    .await;
    assert_eq!(superseded.len(), 1, "{superseded:?}");
    assert_eq!(superseded[0].pr_number, Some(4));
    assert_eq!(superseded[0].superseded_by, Some(newer));
    let current = tasks(TaskQuery {
        superseded: Some(false),
        ..TaskQuery::default()
    })
    .await;
    assert_eq!(current.len(), 4);
    assert!(current.iter().all(|t| t.pr_number != Some(4)));
}
