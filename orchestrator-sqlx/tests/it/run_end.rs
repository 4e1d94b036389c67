//! Issue 13: a handler's `Ended` outcome (an agent run that failed, or that a person stopped)
//! ends the task `failed` / `cancelled` with its output and error, whatever retries are left;
//! a retry of it releases the run's intent in the ledger, so the head may get one new run.

use orchestrator_core::store::agent_run::{Admission, AgentRunPolicy, AgentRunState, RunIntent};
use orchestrator_core::store::{ExternalRun, RetryOutcome};
use orchestrator_core::store::{Finish, TaskEnd};
use orchestrator_core::task::{ExecutionStatus, TaskStatus};
use serde_json::json;

use crate::agent_runs::Ledger;
use crate::support::{at, event, task};

pub async fn an_ended_run_ends_its_task_and_a_retry_releases_the_run<S: Ledger>(store: &S) {
    let trigger = task("codegen_trigger", 0, at(0));
    let task_id = trigger.task_id;
    let stopped = task("codegen_trigger", 0, at(0));
    let stopped_id = stopped.task_id;
    store
        .ingest(event("d-1", "pull_request", at(0)), vec![trigger, stopped])
        .await
        .unwrap();
    let claims = store.claim_due("w", 2, at(61), at(1)).await.unwrap();
    assert_eq!(claims.len(), 2);
    let intent = RunIntent {
        task_id,
        attempt: 1,
        repository: Some("octo/repo".into()),
        pr_number: Some(7),
        head_sha: Some("abc123".into()),
        force: false,
    };
    let policy = AgentRunPolicy::default();
    let Admission::Admitted(first) = store.admit(&intent, &policy, at(1)).await.unwrap() else {
        panic!("the first run of the head is admitted")
    };
    let run = ExternalRun {
        id: "501".into(),
        url: None,
    };
    store
        .record_created(first.intent_id, &run, at(2))
        .await
        .unwrap();

    let output = json!({"status": "failed", "run_id": 501, "agent_status": "FAILED"});
    for claim in &claims {
        let (end, error) = if claim.task.task_id == task_id {
            (TaskEnd::Failed, "Codegen run 501 ended with status FAILED")
        } else {
            (TaskEnd::Cancelled, "Codegen run 502 was stopped (STOPPED)")
        };
        let report = store
            .finish_attempt(
                claim,
                Finish::Ended {
                    end,
                    error: error.into(),
                    output: output.clone(),
                },
                at(3),
            )
            .await
            .unwrap();
        assert_eq!(report.status, end.status());
        assert_eq!(report.run_at, None, "never retried automatically");
    }
    let failed = store.get_task(task_id).await.unwrap().unwrap();
    assert_eq!(failed.task.status, TaskStatus::Failed);
    assert_eq!(failed.task.retry_count, 0);
    assert_eq!(failed.task.output_data, Some(output));
    assert_eq!(failed.task.completed_at, Some(at(3)));
    assert_eq!(
        failed.task.error_message.as_deref(),
        Some("Codegen run 501 ended with status FAILED")
    );
    assert_eq!(failed.executions[0].status, ExecutionStatus::Failed);
    let cancelled = store.get_task(stopped_id).await.unwrap().unwrap();
    assert_eq!(cancelled.task.status, TaskStatus::Cancelled);
    assert_eq!(cancelled.executions[0].status, ExecutionStatus::Cancelled);
    assert!(
        store
            .claim_due("w", 2, at(3660), at(3600))
            .await
            .unwrap()
            .is_empty(),
        "nothing runs again by itself"
    );

    // Still counted for its head until an operator retries the task.
    let again = RunIntent {
        attempt: 2,
        ..intent
    };
    assert!(matches!(
        store.admit(&again, &policy, at(4)).await.unwrap(),
        Admission::Resume(r) if r.intent_id == first.intent_id
    ));
    assert!(matches!(
        store.retry_task(task_id, at(5)).await.unwrap(),
        RetryOutcome::Scheduled(_)
    ));
    assert!(
        store
            .release_ended_run(task_id, "501", "retried", at(6))
            .await
            .unwrap()
    );
    assert!(
        !store
            .release_ended_run(task_id, "501", "retried", at(7))
            .await
            .unwrap(),
        "released once"
    );
    let Admission::Admitted(fresh) = store.admit(&again, &policy, at(8)).await.unwrap() else {
        panic!("the retry may ask for a new run")
    };
    let states: Vec<_> = store
        .agent_runs(task_id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.intent_id, r.state, r.note))
        .collect();
    assert_eq!(
        states,
        vec![
            (
                first.intent_id,
                AgentRunState::Released,
                Some("retried".to_owned())
            ),
            (fresh.intent_id, AgentRunState::Pending, None)
        ]
    );
}
