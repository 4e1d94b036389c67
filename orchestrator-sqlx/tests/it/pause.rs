//! Issue 13, pause and resume, on PostgreSQL, SQLite and the in-memory store: deliveries are
//! still stored while paused; covered tasks stay runnable but no claim or `start_attempt` takes
//! them; other tasks run; a resume hands back the covered runnable tasks (for a queue to publish
//! again) and they run in priority order.

use orchestrator_core::store::pause::{PauseScope, PauseStore};
use orchestrator_core::store::{AttemptStore, EventStore, TaskStore};
use orchestrator_core::task::{TaskStatus, TaskType};

use crate::support::{at, event, task};

/// What every store under test is.
pub trait Pausable: PauseStore + EventStore + TaskStore + AttemptStore {}
impl<T: PauseStore + EventStore + TaskStore + AttemptStore> Pausable for T {}

fn scope(repository: Option<&str>, task_type: Option<&str>) -> PauseScope {
    PauseScope {
        repository: repository.map(str::to_owned),
        task_type: task_type.map(|t| TaskType::new(t).unwrap()),
    }
}

pub async fn paused_tasks_wait_and_a_resume_hands_them_back<S: Pausable>(store: &S) {
    let everything = scope(None, None);
    let first = store.pause(&everything, at(0)).await.unwrap();
    let again = store.pause(&everything, at(5)).await.unwrap();
    assert_eq!(first, again, "one pause per scope, its time kept");
    let other_repo = scope(Some("octo/other"), Some("push_analysis"));
    store.pause(&other_repo, at(1)).await.unwrap();
    assert_eq!(
        store.pauses().await.unwrap().len(),
        2,
        "oldest first: {:?}",
        store.pauses().await.unwrap()
    );

    // Deliveries are still received and stored; their tasks wait.
    let low = task("push_analysis", 1, at(2));
    let high = task("pull_request_analysis", 9, at(2));
    let (low_id, high_id) = (low.task_id, high.task_id);
    store
        .ingest(event("d-1", "push", at(2)), vec![low, high])
        .await
        .unwrap();
    assert!(
        store
            .claim_due("w", 10, at(70), at(10))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .start_attempt(high_id, "w", at(70), at(10))
            .await
            .unwrap()
            .is_none(),
        "a queue that delivers ids cannot start it either"
    );
    let waiting = store.get_task(high_id).await.unwrap().unwrap().task;
    assert_eq!(waiting.status, TaskStatus::Pending, "status unchanged");

    // Resuming a scope that is not paused changes nothing.
    assert_eq!(
        store.resume(&scope(Some("octo/repo"), None)).await.unwrap(),
        None
    );
    // Resuming everything: the other repository's pause still holds, but it covers neither.
    let resumed = store.resume(&everything).await.unwrap().unwrap();
    assert_eq!(
        resumed,
        vec![high_id, low_id],
        "claim order: priority first"
    );
    assert_eq!(store.pauses().await.unwrap().len(), 1);
    let claims = store.claim_due("w", 10, at(71), at(11)).await.unwrap();
    let order: Vec<_> = claims.iter().map(|c| c.task.task_id).collect();
    assert_eq!(order, vec![high_id, low_id]);

    // A pause of one repository and type leaves the rest runnable.
    let other = {
        let mut t = task("push_analysis", 5, at(12));
        t.spec.repository = Some("octo/other".into());
        t
    };
    let other_id = other.task_id;
    let same_repo_other_type = {
        let mut t = task("pull_request_analysis", 5, at(12));
        t.spec.repository = Some("octo/other".into());
        t
    };
    let runnable_id = same_repo_other_type.task_id;
    store
        .ingest(
            event("d-2", "push", at(12)),
            vec![other, same_repo_other_type],
        )
        .await
        .unwrap();
    let claims = store.claim_due("w", 10, at(73), at(13)).await.unwrap();
    let ids: Vec<_> = claims.iter().map(|c| c.task.task_id).collect();
    assert_eq!(ids, vec![runnable_id]);
    assert_eq!(
        store.resume(&other_repo).await.unwrap().unwrap(),
        vec![other_id]
    );
    assert!(store.pauses().await.unwrap().is_empty());
    let claims = store.claim_due("w", 10, at(74), at(14)).await.unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].task.task_id, other_id);
}
