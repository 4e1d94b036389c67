//! `POST /api/v1/tasks/{task_id}/cancel` against the real binary, on SQLite, PostgreSQL and
//! PostgreSQL with the queue on Redis: a pending task never starts (with Redis its id is still
//! delivered, and `start_attempt` refuses it), a running task is stopped at its next lease
//! extension with an execution `cancelled`, its late result never lands and it creates no
//! Codegen run; a terminal task answers 409, an unknown one 404.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::agent_stub::codegen_stub;
use crate::support::*;

/// A `pull_request.opened` payload for pull request `number` at its own head SHA.
fn pull_request(number: u64) -> Vec<u8> {
    let mut body: Value =
        serde_json::from_slice(&corpus("pull_request/opened.payload.json")).unwrap();
    body["number"] = number.into();
    body["pull_request"]["number"] = number.into();
    body["pull_request"]["head"]["sha"] = format!("{number:040x}").into();
    serde_json::to_vec(&body).unwrap()
}

/// POST `path` with the admin token: status and JSON body.
async fn post(server: &Server, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", server.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// The analysis task of pull request `number`, when listed.
fn analysis_of(tasks: &Value, number: u64) -> Option<Value> {
    tasks.as_array()?.iter().find_map(|t| {
        (t["task_type"] == "pull_request_analysis" && t["pr_number"] == number).then(|| t.clone())
    })
}

fn statuses(detail: &Value) -> Vec<String> {
    detail["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_owned())
        .collect()
}

async fn cancel_pending_and_running(db: &TestDb, extra: &[(&str, &str)]) {
    // GitHub answers the analysis' file list after 6 s: long enough to cancel it while it runs.
    let github = github_mock(Duration::from_secs(6)).await;
    let (codegen, stub) = codegen_stub(Duration::ZERO).await;
    let mut env = vec![("WORKER_LEASE_SECONDS", "3")];
    env.extend_from_slice(extra);

    // No worker yet: the task is pending when it is cancelled.
    let api = Server::start(db, &github, &codegen, "api", &env).await;
    let (status, receipt) = api.deliver("pull_request", &pull_request(1)).await;
    assert_eq!(status, 200, "{receipt}");
    let pending = api
        .wait_for("the first analysis", Duration::from_secs(10), |t| {
            analysis_of(t, 1)
        })
        .await;
    let pending_id = pending["task_id"].as_str().unwrap().to_owned();
    let (status, body) = post(&api, &format!("/api/v1/tasks/{pending_id}/cancel")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled", "{body}");
    assert_eq!(body["error_message"], "cancelled by an operator", "{body}");
    assert_eq!(body["executions"], Value::Array(vec![]), "{body}");
    let (status, body) = post(&api, &format!("/api/v1/tasks/{pending_id}/cancel")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["status_code"], 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("already cancelled"),
        "{body}"
    );
    let (status, body) = post(
        &api,
        &format!("/api/v1/tasks/{}/cancel", uuid::Uuid::now_v7()),
    )
    .await;
    assert_eq!(
        (status, body["status_code"].clone()),
        (404, 404.into()),
        "{body}"
    );
    assert_eq!(
        api.metric(r#"tasks_cancelled_total{reason="manual"}"#)
            .await,
        Some(1.0)
    );
    drop(api);

    // With workers: the second analysis is cancelled while its handler waits for GitHub.
    let server = Server::start(db, &github, &codegen, "all", &env).await;
    let (status, receipt) = server.deliver("pull_request", &pull_request(2)).await;
    assert_eq!(status, 200, "{receipt}");
    let running = server
        .wait_for("the second analysis to run", Duration::from_secs(30), |t| {
            analysis_of(t, 2).filter(|t| t["status"] == "running")
        })
        .await;
    let running_id = running["task_id"].as_str().unwrap().to_owned();
    let cancelled_at = Instant::now();
    let (status, body) = post(&server, &format!("/api/v1/tasks/{running_id}/cancel")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled", "{body}");
    assert_eq!(statuses(&body), ["cancelled"], "{body}");

    // Past the moment GitHub answers (and a lease period more): the result never landed.
    tokio::time::sleep(Duration::from_secs(9).saturating_sub(cancelled_at.elapsed())).await;
    let detail = server.get(&format!("/api/v1/tasks/{running_id}")).await;
    assert_eq!(detail["status"], "cancelled", "{detail:#}");
    assert_eq!(detail["output_data"], Value::Null, "{detail:#}");
    assert_eq!(statuses(&detail), ["cancelled"], "{detail:#}");
    let tasks = server.get("/api/v1/tasks?limit=1000").await;
    assert!(task_of(&tasks, "codegen_trigger").is_none(), "{tasks:#}");
    assert!(stub.runs().is_empty(), "a cancelled task created a run");
    assert!(
        server.logs().contains("dropping the attempt"),
        "the worker did not stop the handler:\n{}",
        server.logs()
    );
    // The first task never started, although a worker has been running all along.
    let detail = server.get(&format!("/api/v1/tasks/{pending_id}")).await;
    assert_eq!(detail["status"], "cancelled", "{detail:#}");
    assert!(statuses(&detail).is_empty(), "{detail:#}");
    assert_eq!(
        server
            .metric(r#"tasks_cancelled_total{reason="manual"}"#)
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn cancelled_tasks_never_start_or_finish_on_sqlite() {
    let db = TestDb::sqlite();
    cancel_pending_and_running(&db, &[]).await;
}

#[tokio::test]
async fn cancelled_tasks_never_start_or_finish_on_postgres() {
    let db = TestDb::postgres().await;
    cancel_pending_and_running(&db, &[]).await;
    db.drop_db().await;
}

#[tokio::test]
async fn cancelled_tasks_never_start_or_finish_on_postgres_and_redis() {
    let db = TestDb::postgres().await;
    let redis = TestRedis::new();
    let env = [
        ("REDIS_URL", redis.url.as_str()),
        ("REDIS_KEY_PREFIX", redis.prefix.as_str()),
    ];
    cancel_pending_and_running(&db, &env).await;
    db.drop_db().await;
}
