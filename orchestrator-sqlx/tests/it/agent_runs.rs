//! The agent-run ledger's contract (`AgentRunStore`), written once and run on PostgreSQL, SQLite
//! and the in-memory reference store: admission (resume, the per-head-SHA limit, force), the
//! recorded answers, the needs-attention marker, the release by a manual retry, and racing
//! admissions of one head.

use std::sync::Arc;

use orchestrator_core::error::StoreErrorKind;
use orchestrator_core::store::agent_run::{
    Admission, AgentRunPolicy, AgentRunRecord, AgentRunState, AgentRunStore, Refusal, RunIntent,
};
use orchestrator_core::store::{
    AttemptStore, EventStore, ExternalRun, Finish, IngestOutcome, RetryOutcome, TaskStore,
};
use serde_json::json;
use uuid::Uuid;

use crate::support::{at, event, task};

/// What every store under test is.
pub trait Ledger: AgentRunStore + EventStore + TaskStore + AttemptStore {}
impl<T: AgentRunStore + EventStore + TaskStore + AttemptStore> Ledger for T {}

fn intent(task_id: Uuid, sha: Option<&str>, force: bool) -> RunIntent {
    RunIntent {
        task_id,
        attempt: 1,
        repository: Some("octo/repo".into()),
        pr_number: Some(7),
        head_sha: sha.map(str::to_owned),
        force,
    }
}

async fn admit<S: Ledger>(store: &S, intent: &RunIntent, secs: i64) -> Admission {
    store
        .admit(intent, &AgentRunPolicy::default(), at(secs))
        .await
        .unwrap()
}

fn admitted(admission: Admission) -> AgentRunRecord {
    match admission {
        Admission::Admitted(record) => record,
        other => panic!("not admitted: {other:?}"),
    }
}

pub async fn ledger_admits_resumes_and_limits_each_head<S: Ledger>(store: &S) {
    let (t1, t2, t3) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let first = admitted(admit(store, &intent(t1, Some("h1"), false), 0).await);
    assert_eq!(
        (
            first.state,
            first.task_id,
            first.created_at,
            first.run_id.clone()
        ),
        (AgentRunState::Pending, t1, at(0), None)
    );
    // The task's open intent is handed back, never a second one.
    assert_eq!(
        admit(store, &intent(t1, Some("h1"), true), 1).await,
        Admission::Resume(first.clone())
    );
    // Another task on the same head: refused while the first is open; force overrides.
    let Admission::Refused(Refusal::HeadHasRun { limit, existing }) =
        admit(store, &intent(t2, Some("h1"), false), 2).await
    else {
        panic!("a second run for head h1 was admitted")
    };
    assert_eq!((limit, existing.intent_id), (1, first.intent_id));
    let forced = admitted(admit(store, &intent(t2, Some("h1"), true), 3).await);
    assert!(forced.forced);
    // No known head SHA: no limit applies.
    admitted(admit(store, &intent(t3, None, false), 4).await);
    // A limit of two, or none, admits more on the same head.
    let two = AgentRunPolicy {
        max_runs_per_head: Some(2),
    };
    let t4 = Uuid::now_v7();
    assert!(matches!(
        store
            .admit(&intent(t4, Some("h1"), false), &two, at(5))
            .await
            .unwrap(),
        Admission::Refused(_)
    ));
    let unlimited = AgentRunPolicy {
        max_runs_per_head: None,
    };
    admitted(
        store
            .admit(&intent(t4, Some("h1"), false), &unlimited, at(5))
            .await
            .unwrap(),
    );

    // The answer is recorded; the same change twice is fine, a closed intent refuses others.
    let run = ExternalRun {
        id: "501".into(),
        url: Some("https://agent.test/501".into()),
    };
    store
        .record_created(first.intent_id, &run, at(6))
        .await
        .unwrap();
    let err = store
        .record_not_created(first.intent_id, "refused", at(7))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Conflict);
    let runs = store.agent_runs(t1).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (
            runs[0].state,
            runs[0].run_id.as_deref(),
            runs[0].web_url.as_deref()
        ),
        (
            AgentRunState::Created,
            Some("501"),
            Some("https://agent.test/501")
        )
    );
    assert_eq!(runs[0].updated_at, at(6));

    // An intent the agent refused is closed: it neither blocks its task nor counts for its head.
    let t5 = Uuid::now_v7();
    let refused = admitted(admit(store, &intent(t5, Some("h2"), false), 8).await);
    store
        .record_not_created(refused.intent_id, "402 run limit reached", at(9))
        .await
        .unwrap();
    let again = admitted(admit(store, &intent(t5, Some("h2"), false), 10).await);
    assert_ne!(again.intent_id, refused.intent_id);
    let states: Vec<_> = store
        .agent_runs(t5)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.state, r.note))
        .collect();
    assert_eq!(
        states,
        vec![
            (
                AgentRunState::NotCreated,
                Some("402 run limit reached".into())
            ),
            (AgentRunState::Pending, None)
        ]
    );
    let err = store
        .record_created(Uuid::now_v7(), &run, at(11))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Conflict);
}

pub async fn unresolved_intents_are_marked_and_released_by_a_manual_retry<S: Ledger>(store: &S) {
    let trigger = task("codegen_trigger", 0, at(0));
    let task_id = trigger.task_id;
    let outcome = store
        .ingest(event("d-1", "pull_request", at(0)), vec![trigger])
        .await
        .unwrap();
    assert!(matches!(outcome, IngestOutcome::Accepted { .. }));
    let claim = store
        .claim_due("w", 1, at(61), at(1))
        .await
        .unwrap()
        .remove(0);
    let pending = admitted(admit(store, &intent(task_id, Some("abc123"), false), 1).await);

    // Not found: the intent is unresolved and the task shows why, in one step.
    let marker = json!({"status": "needs_attention", "intent_id": pending.intent_id});
    store
        .mark_unresolved(pending.intent_id, "no run carries it", &marker, at(2))
        .await
        .unwrap();
    let detail = store.get_task(task_id).await.unwrap().unwrap();
    assert_eq!(detail.task.output_data, Some(marker.clone()));
    // Still open: it blocks its task and its head until a person decides.
    assert!(matches!(
        admit(store, &intent(task_id, Some("abc123"), false), 3).await,
        Admission::Resume(r) if r.state == AgentRunState::Unresolved
    ));
    store
        .finish_attempt(
            &claim,
            Finish::Failed {
                error: "needs attention".into(),
            },
            at(3),
        )
        .await
        .unwrap();
    let failed = store.get_task(task_id).await.unwrap().unwrap();
    assert_eq!(
        failed.task.output_data,
        Some(marker),
        "the failure keeps the marker"
    );

    // The operator's retry releases it: the next admission creates exactly one new intent.
    assert!(matches!(
        store.retry_task(task_id, at(4)).await.unwrap(),
        RetryOutcome::Scheduled(_)
    ));
    let fresh = admitted(admit(store, &intent(task_id, Some("abc123"), false), 5).await);
    let states: Vec<_> = store
        .agent_runs(task_id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.intent_id, r.state))
        .collect();
    assert_eq!(
        states,
        vec![
            (pending.intent_id, AgentRunState::Released),
            (fresh.intent_id, AgentRunState::Pending)
        ]
    );
    assert!(matches!(
        admit(store, &intent(Uuid::now_v7(), Some("abc123"), false), 6).await,
        Admission::Refused(_)
    ));
}

pub async fn racing_admissions_of_one_head_admit_one<S: Ledger>(store: &Arc<S>) {
    let mut racing = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = store.clone();
        racing.spawn(async move {
            store
                .admit(
                    &intent(Uuid::now_v7(), Some("race"), false),
                    &AgentRunPolicy::default(),
                    at(i),
                )
                .await
                .unwrap()
        });
    }
    let mut admitted = 0;
    while let Some(admission) = racing.join_next().await {
        match admission.unwrap() {
            Admission::Admitted(_) => admitted += 1,
            Admission::Refused(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(admitted, 1, "exactly one run may be asked for");
}
