//! Cancelling tasks (`CancelStore`), written once and run on PostgreSQL, SQLite and the
//! in-memory reference store: a pending task never starts, a running one loses its lease and
//! its late finish changes nothing, a terminal one is refused, the event settles, and the
//! agent-run ledger refuses a cancelled task; a delivery's pull-request updates are applied in
//! its own ingest commit (single and batch), in order, never for a duplicate.

use orchestrator_core::error::StoreErrorKind;
use orchestrator_core::store::agent_run::{
    Admission, AgentRunPolicy, AgentRunStore, Refusal, RunIntent,
};
use orchestrator_core::store::cancel::{CancelOutcome, CancelStore};
use orchestrator_core::store::operation::{OperationFilter, OperationKind, OperationStore};
use orchestrator_core::store::supersede::{
    CLOSED_MESSAGE, CloseRequest, PrHead, PrUpdate, PrUpdateOutcome, SupersedeOutcome,
    SupersedeRequest,
};
use orchestrator_core::store::{
    AttemptStore, BatchStore, EventStore, Finish, IngestOutcome, NewDelivery, Page, RetryOutcome,
    TaskFilter, TaskStore,
};
use orchestrator_core::task::{ExecutionStatus, TaskStatus, TaskType};
use orchestrator_sqlx::SqlStore;
use serde_json::json;
use uuid::Uuid;

use crate::support::{at, event, task};

/// What every store under test is.
pub trait Cancellable:
    CancelStore + AgentRunStore + EventStore + TaskStore + AttemptStore + OperationStore
{
}
impl<T: CancelStore + AgentRunStore + EventStore + TaskStore + AttemptStore + OperationStore>
    Cancellable for T
{
}

fn cancelled(outcome: CancelOutcome) -> orchestrator_core::task::Task {
    match outcome {
        CancelOutcome::Cancelled(task) => *task,
        other => panic!("not cancelled: {other:?}"),
    }
}

pub async fn cancel_stops_pending_and_running_tasks_and_refuses_terminal_ones<S: Cancellable>(
    store: &S,
) {
    let IngestOutcome::Accepted {
        event_id, task_ids, ..
    } = store
        .ingest(
            event("d-cancel", "pull_request", at(0)),
            vec![
                task("pull_request_analysis", 0, at(0)),
                task("codegen_trigger", 0, at(0)),
                task("push_analysis", 0, at(0)),
            ],
        )
        .await
        .unwrap()
    else {
        panic!("not accepted")
    };
    let (pending, running, done) = (task_ids[0], task_ids[1], task_ids[2]);
    let claim = store
        .start_attempt(running, "w1", at(60), at(1))
        .await
        .unwrap()
        .expect("claimed");
    let finished = store
        .start_attempt(done, "w1", at(60), at(1))
        .await
        .unwrap()
        .expect("claimed");
    store
        .finish_attempt(
            &finished,
            Finish::Completed {
                output: json!({}),
                followups: vec![],
            },
            at(2),
        )
        .await
        .unwrap();

    // A pending task: cancelled, and it never starts.
    let t = cancelled(store.cancel_task(pending, "stop", at(3)).await.unwrap());
    assert_eq!(
        (t.status, t.completed_at, t.error_message.as_deref()),
        (TaskStatus::Cancelled, Some(at(3)), Some("stop"))
    );
    assert!(
        store
            .start_attempt(pending, "w2", at(60), at(4))
            .await
            .unwrap()
            .is_none(),
        "a cancelled task was started"
    );
    assert!(
        store
            .claim_due("w2", 10, at(60), at(4))
            .await
            .unwrap()
            .is_empty()
    );

    // A running task: cancelled with its execution; the worker loses its lease, and its late
    // finish is refused and changes nothing.
    let t = cancelled(store.cancel_task(running, "stop", at(5)).await.unwrap());
    assert_eq!(
        (t.status, t.lease_owner.clone()),
        (TaskStatus::Cancelled, None)
    );
    assert!(!store.extend_lease(&claim, at(90)).await.unwrap());
    let late = store
        .finish_attempt(
            &claim,
            Finish::Completed {
                output: json!({"late": true}),
                followups: vec![task("codegen_trigger", 0, at(6))],
            },
            at(6),
        )
        .await
        .unwrap_err();
    assert_eq!(late.kind(), StoreErrorKind::Conflict);
    let detail = store.get_task(running).await.unwrap().unwrap();
    assert_eq!(detail.task.status, TaskStatus::Cancelled);
    assert_eq!(detail.task.output_data, None);
    let last = detail.executions.last().expect("an execution");
    assert_eq!(
        (
            last.status,
            last.completed_at,
            last.error_message.as_deref()
        ),
        (ExecutionStatus::Cancelled, Some(at(5)), Some("stop"))
    );
    assert_eq!(last.duration_ms, Some(4000));

    // The ledger refuses a run for the cancelled task.
    let intent = RunIntent {
        task_id: running,
        attempt: 1,
        repository: Some("octo/repo".into()),
        pr_number: Some(7),
        head_sha: Some("abc123".into()),
        force: false,
    };
    assert_eq!(
        store
            .admit(&intent, &AgentRunPolicy::default(), at(7))
            .await
            .unwrap(),
        Admission::Refused(Refusal::TaskCancelled)
    );
    assert!(store.agent_runs(running).await.unwrap().is_empty());

    // Terminal and unknown tasks.
    assert_eq!(
        store.cancel_task(done, "stop", at(8)).await.unwrap(),
        CancelOutcome::Terminal(TaskStatus::Completed)
    );
    assert_eq!(
        store.cancel_task(pending, "again", at(8)).await.unwrap(),
        CancelOutcome::Terminal(TaskStatus::Cancelled)
    );
    assert_eq!(
        store
            .cancel_task(Uuid::now_v7(), "stop", at(8))
            .await
            .unwrap(),
        CancelOutcome::NotFound
    );
    // Every task is terminal: the event is processed, and no follow-up was inserted.
    let ev = store.get_event(event_id).await.unwrap().unwrap();
    assert!(ev.processed, "{ev:?}");
    assert_eq!(ev.error_message, None);
    let all = store
        .list_tasks(&Default::default(), Default::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    // An operator may run a cancelled task again.
    assert!(matches!(
        store.retry_task(pending, at(9)).await.unwrap(),
        RetryOutcome::Scheduled(_)
    ));
}

fn at_sha(kind: &str, sha: &str, parent: Option<Uuid>) -> orchestrator_core::task::NewTask {
    let mut t = task(kind, 0, at(0));
    t.spec.commit_sha = Some(sha.to_owned());
    t.parent_task_id = parent;
    t
}

async fn ingest<S: Cancellable>(
    store: &S,
    delivery: &str,
    tasks: Vec<orchestrator_core::task::NewTask>,
) -> Vec<Uuid> {
    match store
        .ingest(event(delivery, "pull_request", at(0)), tasks)
        .await
        .unwrap()
    {
        IngestOutcome::Accepted { task_ids, .. } => task_ids,
        other => panic!("not accepted: {other:?}"),
    }
}

fn request(sha: &str, secs: i64, new: Vec<Uuid>, kind: &str) -> SupersedeRequest {
    SupersedeRequest {
        head: PrHead {
            repository: "octo/repo".into(),
            pr_number: 7,
            head_sha: sha.into(),
            head_at: at(secs),
        },
        new_tasks: new
            .into_iter()
            .map(|id| (id, TaskType::new(kind).unwrap()))
            .collect(),
        running: false,
    }
}

async fn task_of<S: Cancellable>(store: &S, id: Uuid) -> orchestrator_core::task::Task {
    store.get_task(id).await.unwrap().unwrap().task
}

pub async fn supersede_cancels_stale_work_keeps_runs_and_ignores_late_heads<S: Cancellable>(
    store: &S,
) {
    // Head a: an analysis (pending), one running, and two agent children of a finished one.
    let a = ingest(
        store,
        "d-a",
        vec![
            at_sha("pull_request_analysis", "a", None),
            at_sha("pull_request_analysis", "a", None),
        ],
    )
    .await;
    let (a_pending, a_running) = (a[0], a[1]);
    let first = store
        .supersede(
            &request("a", 10, vec![a_pending], "pull_request_analysis"),
            at(1),
        )
        .await
        .unwrap();
    assert_eq!(first, SupersedeOutcome::default());
    store
        .start_attempt(a_running, "w", at(600), at(1))
        .await
        .unwrap()
        .expect("claimed");
    let children = ingest(
        store,
        "d-a-children",
        vec![
            at_sha("codegen_trigger", "a", Some(a_running)),
            at_sha("codegen_trigger", "a", Some(a_running)),
        ],
    )
    .await;
    let (with_run, without_run) = (children[0], children[1]);
    let intent = RunIntent {
        task_id: with_run,
        attempt: 1,
        repository: Some("octo/repo".into()),
        pr_number: Some(7),
        head_sha: Some("a".into()),
        force: false,
    };
    assert!(matches!(
        store
            .admit(&intent, &AgentRunPolicy::default(), at(2))
            .await
            .unwrap(),
        Admission::Admitted(_)
    ));

    // Head b (newer): the stale pending analysis and the child without a run are cancelled;
    // the running analysis stays (SUPERSEDE_RUNNING is off); the child with a run is marked.
    let b = ingest(
        store,
        "d-b",
        vec![at_sha("pull_request_analysis", "b", None)],
    )
    .await[0];
    let outcome = store
        .supersede(&request("b", 20, vec![b], "pull_request_analysis"), at(3))
        .await
        .unwrap();
    assert_eq!(outcome.cancelled, vec![a_pending, without_run]);
    assert_eq!(outcome.marked, vec![with_run]);
    assert!(!outcome.late);
    let t = task_of(store, a_pending).await;
    assert_eq!(
        (t.status, t.superseded_by),
        (TaskStatus::Cancelled, Some(b))
    );
    assert!(t.error_message.unwrap().contains("head SHA b"));
    let t = task_of(store, without_run).await;
    assert_eq!(
        (t.status, t.superseded_by),
        (TaskStatus::Cancelled, Some(b))
    );
    let t = task_of(store, with_run).await;
    assert_eq!((t.status, t.superseded_by), (TaskStatus::Pending, Some(b)));
    assert_eq!(task_of(store, a_running).await.status, TaskStatus::Running);
    let refused = RunIntent {
        task_id: without_run,
        ..intent.clone()
    };
    assert_eq!(
        store
            .admit(&refused, &AgentRunPolicy::default(), at(4))
            .await
            .unwrap(),
        Admission::Refused(Refusal::TaskCancelled)
    );

    // A late delivery of head a (older than b) cancels nothing of b; its own task is stale.
    let late = ingest(
        store,
        "d-a-late",
        vec![at_sha("pull_request_analysis", "a", None)],
    )
    .await[0];
    let outcome = store
        .supersede(
            &request("a", 15, vec![late], "pull_request_analysis"),
            at(5),
        )
        .await
        .unwrap();
    assert!(outcome.late);
    assert_eq!(outcome.cancelled, vec![late]);
    assert_eq!(task_of(store, late).await.superseded_by, Some(b));
    assert_eq!(task_of(store, b).await.status, TaskStatus::Pending);
    // The same head again (a redelivery or reopened) supersedes nothing.
    let again = store
        .supersede(&request("b", 20, vec![b], "pull_request_analysis"), at(6))
        .await
        .unwrap();
    assert!(again.cancelled.is_empty() && !again.late);

    // Closing the pull request cancels its pending work, not running work or a followed run.
    let closed = store
        .cancel_closed("octo/repo", 7, "closed", false, at(7))
        .await
        .unwrap();
    assert_eq!(closed, vec![b]);
    let t = task_of(store, b).await;
    assert_eq!(
        (t.status, t.error_message.as_deref(), t.superseded_by),
        (TaskStatus::Cancelled, Some("closed"), None)
    );
    assert_eq!(task_of(store, with_run).await.status, TaskStatus::Pending);
    assert_eq!(task_of(store, a_running).await.status, TaskStatus::Running);

    // The task list filters by it.
    let list = |filter: TaskFilter| async move {
        let mut ids: Vec<Uuid> = store
            .list_tasks(&filter, Page::default())
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.task_id)
            .collect();
        ids.sort();
        ids
    };
    let mut by_b = vec![a_pending, with_run, without_run, late];
    by_b.sort();
    let superseded_by_b = TaskFilter {
        superseded_by: Some(b),
        ..TaskFilter::default()
    };
    assert_eq!(list(superseded_by_b).await, by_b);
    let superseded = TaskFilter {
        superseded: Some(true),
        ..TaskFilter::default()
    };
    assert_eq!(list(superseded).await, by_b);
    let mut rest = vec![a_running, b];
    rest.sort();
    let not_superseded = TaskFilter {
        superseded: Some(false),
        ..TaskFilter::default()
    };
    assert_eq!(list(not_superseded).await, rest);

    // A bulk retry can take the superseded ones alone, or leave them out: of the cancelled
    // tasks, the three that a newer head replaced, or b (cancelled by the close).
    let retry = |superseded: bool| async move {
        let filter = OperationFilter {
            repository: Some("octo/repo".into()),
            superseded: Some(superseded),
            ..OperationFilter::default()
        };
        let mut ids = store
            .preview(OperationKind::RetryTasks, &filter, 10, at(8))
            .await
            .unwrap()
            .task_ids;
        ids.sort();
        ids
    };
    let mut replaced = vec![a_pending, without_run, late];
    replaced.sort();
    assert_eq!(retry(true).await, replaced);
    assert_eq!(retry(false).await, vec![b]);
}

/// `delivery` with one analysis task at `sha` and, as its update, the supersede of head `sha`
/// at `secs` (the task is the new work).
fn head_delivery(delivery: &str, sha: &str, secs: i64) -> (NewDelivery, Uuid) {
    let task = at_sha("pull_request_analysis", sha, None);
    let id = task.task_id;
    let update = PrUpdate::Supersede(request(sha, secs, vec![id], "pull_request_analysis"));
    let delivery = NewDelivery::new(event(delivery, "pull_request", at(secs)), vec![task])
        .with_pr_updates(vec![update]);
    (delivery, id)
}

/// `deliveries` through the store's group-commit path, each prepared as the committer does;
/// every outcome must be Ok.
async fn ingest_batch<S: BatchStore>(
    store: &S,
    deliveries: Vec<NewDelivery>,
) -> Vec<IngestOutcome> {
    let batch = deliveries
        .into_iter()
        .map(|d| {
            let prepared = store.prepare(&d.event);
            (d, prepared)
        })
        .collect();
    store
        .ingest_batch(batch)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

fn accepted_updates(outcome: &IngestOutcome) -> &[PrUpdateOutcome] {
    match outcome {
        IngestOutcome::Accepted { pr_updates, .. } => pr_updates,
        other => panic!("not accepted: {other:?}"),
    }
}

fn superseded(cancelled: Vec<Uuid>, late: bool) -> PrUpdateOutcome {
    PrUpdateOutcome::Superseded(SupersedeOutcome {
        cancelled,
        marked: Vec::new(),
        late,
    })
}

/// The pull-request updates a delivery carries are applied in its own ingest commit, only when
/// it is accepted (a redelivery supersedes nothing), and in a batch in delivery order: an
/// update sees the deliveries before it, never a later one of the same batch.
pub async fn pr_updates_apply_in_the_ingest_commit_in_order_and_never_for_a_duplicate<
    S: Cancellable + BatchStore,
>(
    store: &S,
) {
    // Head a, alone: nothing older to supersede.
    let (first, a) = head_delivery("d-a", "a", 10);
    let outcome = store.ingest_delivery(first).await.unwrap();
    assert_eq!(accepted_updates(&outcome), &[superseded(vec![], false)]);

    // The same delivery id again, now carrying a newer head z and a close: a duplicate, so
    // nothing of it is applied (a stays pending, z is not recorded as the newest head).
    let (mut again, z) = head_delivery("d-a", "z", 99);
    again.pr_updates.push(PrUpdate::Close(CloseRequest {
        repository: "octo/repo".into(),
        pr_number: 7,
        running: true,
    }));
    let outcome = store.ingest_delivery(again).await.unwrap();
    assert!(
        matches!(outcome, IngestOutcome::Duplicate { .. }),
        "{outcome:?}"
    );
    assert_eq!(task_of(store, a).await.status, TaskStatus::Pending);
    assert!(store.get_task(z).await.unwrap().is_none());

    // One batch: head b (newer than a), head c (newer than b), a late delivery of head b
    // (older than c), and a redelivery of c carrying a close. In order: b supersedes a, c
    // supersedes b, the late b is superseded by c at once, the redelivery does nothing. (Had
    // all the batch's tasks been visible to b's update, it would have cancelled c's task.)
    let (b_delivery, b) = head_delivery("d-b", "b", 20);
    let (c_delivery, c) = head_delivery("d-c", "c", 30);
    let (late_delivery, late) = head_delivery("d-b-late", "b", 25);
    let mut redelivery = NewDelivery::new(event("d-c", "pull_request", at(31)), vec![]);
    redelivery.pr_updates.push(PrUpdate::Close(CloseRequest {
        repository: "octo/repo".into(),
        pr_number: 7,
        running: true,
    }));
    let outcomes = ingest_batch(
        store,
        vec![b_delivery, c_delivery, late_delivery, redelivery],
    )
    .await;
    assert_eq!(
        accepted_updates(&outcomes[0]),
        &[superseded(vec![a], false)]
    );
    assert_eq!(
        accepted_updates(&outcomes[1]),
        &[superseded(vec![b], false)]
    );
    assert_eq!(
        accepted_updates(&outcomes[2]),
        &[superseded(vec![late], true)]
    );
    assert!(matches!(outcomes[3], IngestOutcome::Duplicate { .. }));
    for (task, by) in [(a, b), (b, c), (late, c)] {
        let t = task_of(store, task).await;
        assert_eq!(
            (t.status, t.superseded_by),
            (TaskStatus::Cancelled, Some(by))
        );
    }
    assert_eq!(task_of(store, c).await.status, TaskStatus::Pending);

    // Another batch: a delivery without updates brings a task at head q; the next one, for
    // the current head c, sees it (written before its update runs) and supersedes it; a third
    // for head c has nothing left to do.
    let plain = NewDelivery::new(
        event("d-q", "pull_request", at(32)),
        vec![at_sha("pull_request_analysis", "q", None)],
    );
    let q = plain.tasks[0].task_id;
    let (c_again, c2) = head_delivery("d-c2", "c", 30);
    let (c_third, c3) = head_delivery("d-c3", "c", 30);
    let outcomes = ingest_batch(store, vec![plain, c_again, c_third]).await;
    assert!(accepted_updates(&outcomes[0]).is_empty());
    assert_eq!(
        accepted_updates(&outcomes[1]),
        &[superseded(vec![q], false)]
    );
    assert_eq!(accepted_updates(&outcomes[2]), &[superseded(vec![], false)]);
    let t = task_of(store, q).await;
    assert_eq!(
        (t.status, t.superseded_by),
        (TaskStatus::Cancelled, Some(c2))
    );

    // A close in a batch of its own cancels the open work, in the same commit.
    let mut close = NewDelivery::new(event("d-close", "pull_request", at(40)), vec![]);
    close.pr_updates.push(PrUpdate::Close(CloseRequest {
        repository: "octo/repo".into(),
        pr_number: 7,
        running: false,
    }));
    let outcome = ingest_batch(store, vec![close]).await.remove(0);
    assert_eq!(
        accepted_updates(&outcome),
        &[PrUpdateOutcome::Closed(vec![c, c2, c3])]
    );
    let t = task_of(store, c).await;
    assert_eq!(
        (t.status, t.error_message.as_deref()),
        (TaskStatus::Cancelled, Some(CLOSED_MESSAGE))
    );
    // Every cancel settled its event: the first delivery's event is processed.
    let IngestOutcome::Duplicate { event_id } = store
        .ingest(event("d-a", "pull_request", at(50)), vec![])
        .await
        .unwrap()
    else {
        panic!("a redelivery")
    };
    assert!(store.get_event(event_id).await.unwrap().unwrap().processed);
}

/// Batches of a pull request's current head (settled: on PostgreSQL they hold its lock shared
/// and commit side by side) race a batch that brings a newer head (exclusive): whatever the
/// order the commits land in, no task at the older head stays open, the newer head's task
/// does, and every delivery is stored once.
pub async fn settled_batches_racing_a_new_head_leave_no_stale_work(store: &SqlStore) {
    let store = std::sync::Arc::new(store.clone());
    let (first, _) = head_delivery("race-a-0", "a", 10);
    ingest_batch(&*store, vec![first]).await;
    for round in 0..5 {
        let mut racers = Vec::new();
        for r in 0..6 {
            let deliveries: Vec<NewDelivery> = (0..4)
                .map(|i| head_delivery(&format!("race-{round}-{r}-{i}"), "a", 10).0)
                .collect();
            let store = std::sync::Arc::clone(&store);
            racers.push(tokio::spawn(async move {
                ingest_batch(&*store, deliveries).await
            }));
        }
        // The newer head, in the middle of the race (of the first round only: later rounds'
        // head-a batches arrive late, after it).
        let newer = (round == 0).then(|| {
            let (delivery, id) = head_delivery("race-b", "b", 20);
            let deliveries = vec![delivery, head_delivery("race-b-2", "b", 20).0];
            let store = std::sync::Arc::clone(&store);
            (
                id,
                tokio::spawn(async move { ingest_batch(&*store, deliveries).await }),
            )
        });
        for racer in racers {
            for outcome in racer.await.unwrap() {
                assert!(matches!(outcome, IngestOutcome::Accepted { .. }));
            }
        }
        if let Some((id, handle)) = newer {
            for outcome in handle.await.unwrap() {
                assert!(matches!(outcome, IngestOutcome::Accepted { .. }));
            }
            assert_eq!(task_of(&*store, id).await.status, TaskStatus::Pending);
        }
    }
    let open = TaskFilter {
        status: Some(TaskStatus::Pending),
        ..TaskFilter::default()
    };
    let page = Page {
        limit: 1000,
        offset: 0,
    };
    let open: Vec<_> = store.list_tasks(&open, page).await.unwrap();
    let stale: Vec<_> = open
        .iter()
        .filter(|t| t.commit_sha.as_deref() == Some("a"))
        .collect();
    assert!(stale.is_empty(), "open work at the old head: {stale:#?}");
    assert_eq!(open.len(), 2, "the newer head's two tasks: {open:#?}");
    let all = store
        .list_tasks(&TaskFilter::default(), page)
        .await
        .unwrap();
    assert_eq!(all.len(), 1 + 5 * 6 * 4 + 2, "every delivery's task, once");
}
