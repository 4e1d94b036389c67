//! The reporter's store contract (`ReportStore`, issue 17), written once and run on PostgreSQL,
//! SQLite and the in-memory reference store: changed tasks in `(updated_at, id)` order after a
//! cursor, a task's follow-ups, the single-holder lease, the cursor, the records with their
//! due retries, and their retention.

use orchestrator_core::store::report::{ReportCursor, ReportKind, ReportRecord, ReportStore};
use orchestrator_core::store::{
    AttemptStore, EventStore, Finish, IngestOutcome, RetentionPolicy, TaskStore,
};
use uuid::Uuid;

use crate::support::{at, event, task};

/// What every store under test is.
pub trait Reports: ReportStore + EventStore + TaskStore + AttemptStore {}
impl<T: ReportStore + EventStore + TaskStore + AttemptStore> Reports for T {}

pub async fn changed_tasks_follow_the_cursor<S: Reports>(store: &S) {
    let parent = task("pull_request_analysis", 0, at(0));
    let mut child = task("codegen_trigger", 0, at(0));
    child.parent_task_id = Some(parent.task_id);
    let other = task("push_analysis", 0, at(0));
    let ids = [parent.task_id, child.task_id, other.task_id];
    let outcome = store
        .ingest(
            event("d-report", "pull_request", at(0)),
            vec![parent, child, other],
        )
        .await
        .unwrap();
    assert!(matches!(outcome, IngestOutcome::Accepted { .. }));

    let all = store
        .changed_tasks(&ReportCursor::start(), 10)
        .await
        .unwrap();
    assert_eq!(all.iter().map(|t| t.task_id).collect::<Vec<_>>(), ids);
    let page = store
        .changed_tasks(&ReportCursor::start(), 2)
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    let after = ReportCursor::of(&page[1]);
    let rest = store.changed_tasks(&after, 10).await.unwrap();
    assert_eq!(rest.iter().map(|t| t.task_id).collect::<Vec<_>>(), [ids[2]]);

    // A later change of the first task moves it after the cursor.
    let claim = store
        .start_attempt(ids[0], "w1", at(60), at(5))
        .await
        .unwrap();
    assert!(claim.is_some());
    let last = ReportCursor::of(&rest[0]);
    let moved = store.changed_tasks(&last, 10).await.unwrap();
    assert_eq!(
        moved.iter().map(|t| t.task_id).collect::<Vec<_>>(),
        [ids[0]]
    );
    assert_eq!(moved[0].updated_at, at(5));

    let children = store.child_tasks(ids[0]).await.unwrap();
    assert_eq!(
        children.iter().map(|t| t.task_id).collect::<Vec<_>>(),
        [ids[1]]
    );
    assert!(store.child_tasks(ids[2]).await.unwrap().is_empty());
}

pub async fn one_reporter_holds_the_lease_and_records_are_kept<S: Reports>(store: &S) {
    assert!(
        store
            .lease_reporter("github", "a", at(30), at(0))
            .await
            .unwrap()
    );
    assert!(
        !store
            .lease_reporter("github", "b", at(40), at(10))
            .await
            .unwrap(),
        "a holds it"
    );
    assert!(
        store
            .lease_reporter("github", "a", at(60), at(20))
            .await
            .unwrap(),
        "a renews"
    );
    assert!(
        !store
            .lease_reporter("github", "b", at(70), at(59))
            .await
            .unwrap()
    );
    assert!(
        store
            .lease_reporter("github", "b", at(100), at(61))
            .await
            .unwrap(),
        "expired"
    );
    assert!(
        !store
            .lease_reporter("github", "a", at(110), at(62))
            .await
            .unwrap()
    );

    assert_eq!(store.report_cursor("github").await.unwrap(), None);
    let cursor = ReportCursor {
        updated_at: at(7),
        id: 3,
    };
    store
        .save_report_cursor("github", &cursor, at(8))
        .await
        .unwrap();
    assert_eq!(store.report_cursor("github").await.unwrap(), Some(cursor));
    assert!(
        !store
            .lease_reporter("github", "a", at(110), at(62))
            .await
            .unwrap(),
        "saving the cursor keeps the lease"
    );

    let task_id = Uuid::now_v7();
    let key = ReportRecord::task_key(task_id);
    assert_eq!(store.report(&key).await.unwrap(), None);
    let mut record = ReportRecord::new(key.clone(), ReportKind::CheckRun, Some(task_id), at(1));
    record.failures = 2;
    record.retry_at = Some(at(20));
    record.last_error = Some("GitHub checks.create: 502".into());
    store.save_report(&record).await.unwrap();
    assert_eq!(store.report(&key).await.unwrap(), Some(record.clone()));
    let comment = ReportRecord {
        retry_at: Some(at(10)),
        ..ReportRecord::new(
            ReportRecord::comment_key("octo/repo", 7),
            ReportKind::Comment,
            None,
            at(1),
        )
    };
    store.save_report(&comment).await.unwrap();

    assert!(store.due_reports(at(9), 10).await.unwrap().is_empty());
    let due = store.due_reports(at(20), 10).await.unwrap();
    assert_eq!(
        due,
        vec![comment.clone(), record.clone()],
        "oldest retry first"
    );
    assert_eq!(store.due_reports(at(20), 1).await.unwrap(), vec![comment]);

    // A success replaces the record: nothing owed any more.
    record.external_id = Some(555);
    record.fingerprint = Some("f1".into());
    record.failures = 0;
    record.retry_at = None;
    record.last_error = None;
    record.updated_at = at(21);
    store.save_report(&record).await.unwrap();
    assert_eq!(store.report(&key).await.unwrap(), Some(record));
    assert_eq!(store.due_reports(at(30), 10).await.unwrap().len(), 1);
}

/// Retention removes the reporting records of removed tasks (and of tasks already gone) once
/// they are as old as the finished-task retention; the records of stored tasks, and recent
/// ones, stay.
pub async fn cleanup_removes_the_records_of_removed_tasks<S: Reports>(store: &S) {
    let day = 86_400;
    let done = task("pull_request_analysis", 0, at(0));
    let open = task("pull_request_analysis", 0, at(30 * day));
    let (done_id, open_id) = (done.task_id, open.task_id);
    let outcome = store
        .ingest(
            event("d-retention", "pull_request", at(0)),
            vec![done, open],
        )
        .await
        .unwrap();
    assert!(matches!(outcome, IngestOutcome::Accepted { .. }));
    let claim = store
        .start_attempt(done_id, "w1", at(60), at(1))
        .await
        .unwrap()
        .unwrap();
    store
        .finish_attempt(
            &claim,
            Finish::Completed {
                output: serde_json::json!({}),
                followups: vec![],
            },
            at(2),
        )
        .await
        .unwrap();
    let record = |key: String, task_id: Option<Uuid>, updated: i64| ReportRecord {
        fingerprint: Some("f".into()),
        ..ReportRecord::new(key, ReportKind::CheckRun, task_id, at(updated))
    };
    let gone = Uuid::now_v7();
    let removed = [
        record(ReportRecord::task_key(done_id), Some(done_id), 3),
        record(ReportRecord::task_key(gone), Some(gone), 3),
    ];
    let kept = [
        // Its task can still run.
        record(ReportRecord::task_key(open_id), Some(open_id), 3),
        // Its last task is gone, but the pull request's comment changed recently.
        ReportRecord {
            kind: ReportKind::Comment,
            ..record(
                ReportRecord::comment_key("octo/repo", 7),
                Some(gone),
                9 * day,
            )
        },
    ];
    for r in removed.iter().chain(&kept) {
        store.save_report(r).await.unwrap();
    }

    let report = store
        .cleanup(&RetentionPolicy::default(), at(10 * day))
        .await
        .unwrap();
    assert_eq!((report.tasks_deleted, report.reports_deleted), (1, 2));
    for r in &removed {
        assert_eq!(store.report(&r.key).await.unwrap(), None, "{}", r.key);
    }
    for r in &kept {
        assert_eq!(
            store.report(&r.key).await.unwrap().as_ref(),
            Some(r),
            "{}",
            r.key
        );
    }
    let again = store
        .cleanup(&RetentionPolicy::default(), at(10 * day))
        .await
        .unwrap();
    assert_eq!(again.reports_deleted, 0);
}
