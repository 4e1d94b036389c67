//! Issue 13: a Codegen run that ends FAILED fails its `codegen_trigger` task (the agent's status
//! and result in `error_message`, no automatic retry), and `POST /api/v1/tasks/{id}/retry`
//! creates exactly one new run and follows it, the old run kept in the output's `history`. The
//! real binary against a Codegen stand-in, on SQLite, PostgreSQL, and PostgreSQL with the queue
//! on Redis.

use std::time::Duration;

use serde_json::{Value, json};

use crate::agent_stub::codegen_stub;
use crate::support::*;

fn trigger_in(tasks: &Value, status: &str) -> Option<Value> {
    task_of(tasks, "codegen_trigger")
        .filter(|t| t["status"] == status)
        .cloned()
}

async fn a_failed_run_fails_the_task_and_a_retry_asks_once_again(
    db: &TestDb,
    extra: &[(&str, &str)],
) {
    let github = github_mock(Duration::ZERO).await;
    let (codegen, stub) = codegen_stub(Duration::ZERO).await;
    stub.end_runs_with(&["FAILED"]);
    let server = Server::start(db, &github, &codegen, "all", extra).await;
    let (status, receipt) = server
        .deliver("pull_request", &corpus("pull_request/opened.payload.json"))
        .await;
    assert_eq!(status, 200, "{receipt}");

    let failed = server
        .wait_for("the run's failure", Duration::from_secs(60), |tasks| {
            trigger_in(tasks, "failed")
        })
        .await;
    let task_id = failed["task_id"].as_str().unwrap().to_owned();
    let error = failed["error_message"].as_str().unwrap_or_default();
    assert!(
        error.contains("5000") && error.contains("FAILED"),
        "{failed:#}"
    );
    // No automatic retry: several poll periods later, still one run and still failed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stub.runs().len(), 1);
    let detail = server.get(&format!("/api/v1/tasks/{task_id}")).await;
    assert_eq!(detail["status"], "failed", "{detail:#}");
    assert_eq!(
        detail["output_data"]["agent_status"], "FAILED",
        "{detail:#}"
    );
    let failures = detail["executions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["status"] == "failed")
        .count();
    assert_eq!(failures, 1, "one failed attempt, never retried: {detail:#}");

    let (status, retried) = server
        .post_admin(&format!("/api/v1/tasks/{task_id}/retry"), &json!({}))
        .await;
    assert_eq!(status, 200, "{retried:#}");
    let completed = server
        .wait_for(
            "the retried run to complete",
            Duration::from_secs(60),
            |tasks| trigger_in(tasks, "completed"),
        )
        .await;
    assert_eq!(completed["task_id"], task_id.as_str());
    let runs = stub.runs();
    assert_eq!(runs.len(), 2, "the retry created exactly one run: {runs:?}");
    assert_eq!(runs[1].metadata["task_id"], task_id.as_str());
    let detail = server.get(&format!("/api/v1/tasks/{task_id}")).await;
    let output = &detail["output_data"];
    assert_eq!(output["run_id"], 5001, "{detail:#}");
    assert_eq!(output["history"][0]["run_id"], 5000, "{detail:#}");
    assert_eq!(output["history"][0]["agent_status"], "FAILED", "{detail:#}");
    assert_eq!(detail["codegen_task_url"], runs[1].web_url().as_str());
    assert_eq!(
        server
            .metric(r#"codegen_agent_tasks_total{outcome="failed"}"#)
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn a_failed_run_fails_the_task_and_a_retry_asks_once_again_on_sqlite() {
    let db = TestDb::sqlite();
    a_failed_run_fails_the_task_and_a_retry_asks_once_again(&db, &[]).await;
}

#[tokio::test]
async fn a_failed_run_fails_the_task_and_a_retry_asks_once_again_on_postgres() {
    let db = TestDb::postgres().await;
    a_failed_run_fails_the_task_and_a_retry_asks_once_again(&db, &[]).await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_failed_run_fails_the_task_and_a_retry_asks_once_again_on_postgres_and_redis() {
    let db = TestDb::postgres().await;
    let redis = TestRedis::new();
    let env = [
        ("REDIS_URL", redis.url.as_str()),
        ("REDIS_KEY_PREFIX", redis.prefix.as_str()),
    ];
    a_failed_run_fails_the_task_and_a_retry_asks_once_again(&db, &env).await;
    db.drop_db().await;
}
