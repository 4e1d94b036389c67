//! Bulk retry by filter on the real binary: tasks that failed (GitHub was down) are retried by
//! one `POST /api/v1/tasks/retry`; the operation is stored by an API-only process (which never
//! runs it), survives that process, and is run by the worker role of the next one, on SQLite,
//! PostgreSQL, and PostgreSQL with the queue on Redis.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::MockServer;

use crate::support::*;

async fn post(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", server.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn failed_retry_finishes_after_a_restart(db: &TestDb, env: &[(&str, &str)]) {
    // GitHub answers nothing (404): the pull request's analysis fails for good.
    let github = MockServer::start().await;
    let codegen = codegen_mock().await;
    let mut first = Server::start(db, &github, &codegen, "all", env).await;
    let (status, receipt) = first
        .deliver("pull_request", &corpus("pull_request/opened.payload.json"))
        .await;
    assert_eq!(status, 200, "{receipt}");
    let failed: Vec<String> = first
        .wait_for("the analysis to fail", Duration::from_secs(60), |tasks| {
            let tasks = tasks.as_array()?;
            (!tasks.is_empty() && tasks.iter().all(|t| t["status"] == "failed")).then(|| {
                tasks
                    .iter()
                    .map(|t| t["task_id"].as_str().unwrap().to_owned())
                    .collect()
            })
        })
        .await;
    first.terminate();

    // An API-only process: the operation is stored and answered, and stays pending.
    let mut api = Server::start(db, &github, &codegen, "api", env).await;
    let (status, dry) = post(
        &api,
        "/api/v1/tasks/retry",
        json!({"status": "failed", "dry_run": true}),
    )
    .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["matched"], failed.len());
    let (status, bad) = post(
        &api,
        "/api/v1/tasks/retry",
        json!({"status": "failed", "oops": 1}),
    )
    .await;
    assert_eq!(
        (status, bad["status_code"].clone()),
        (400, json!(400)),
        "{bad}"
    );
    let (status, op) = post(&api, "/api/v1/tasks/retry", json!({"status": "failed"})).await;
    assert_eq!(status, 202, "{op}");
    assert_eq!(op["matched"], failed.len());
    let id = op["operation_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let op = api.get(&format!("/api/v1/operations/{id}")).await;
    assert_eq!(
        op["status"], "pending",
        "the API role runs no operation: {op}"
    );
    api.terminate();

    // GitHub is back; a full process takes the stored operation over and runs it.
    mount_files(&github, Duration::ZERO).await;
    let worker = Server::start(db, &github, &codegen, "all", env).await;
    let started = Instant::now();
    let op = loop {
        let op = worker.get(&format!("/api/v1/operations/{id}")).await;
        if op["status"] == "completed" {
            break op;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "operation did not complete: {op}\n{}",
            worker.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(op["done"], failed.len(), "{op}");
    assert_eq!(
        (op["failed"].clone(), op["skipped"].clone()),
        (json!(0), json!(0))
    );
    assert!(op["started_at"].is_string() && op["finished_at"].is_string());
    for task_id in &failed {
        let started = Instant::now();
        loop {
            let detail = worker.get(&format!("/api/v1/tasks/{task_id}")).await;
            if detail["status"] == "completed" {
                let attempts = detail["executions"].as_array().unwrap().len();
                assert_eq!(
                    attempts, 2,
                    "one failed attempt, one after the retry: {detail:#}"
                );
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "task {task_id} did not complete: {detail:#}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // A second retry of the same filter finds nothing left to do.
    let (_, again) = post(
        &worker,
        "/api/v1/tasks/retry",
        json!({"status": "failed", "dry_run": true}),
    )
    .await;
    assert_eq!(again["matched"], 0);
    let list = worker.get("/api/v1/operations").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_bulk_retry_survives_the_api_process_and_runs_in_the_worker_on_sqlite() {
    let db = TestDb::sqlite();
    failed_retry_finishes_after_a_restart(&db, &[]).await;
}

#[tokio::test]
async fn a_bulk_retry_survives_the_api_process_and_runs_in_the_worker_on_postgres() {
    let db = TestDb::postgres().await;
    failed_retry_finishes_after_a_restart(&db, &[]).await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_bulk_retry_survives_the_api_process_and_runs_in_the_worker_on_postgres_and_redis() {
    let db = TestDb::postgres().await;
    let redis = TestRedis::new();
    let env = [
        ("REDIS_URL", redis.url.as_str()),
        ("REDIS_KEY_PREFIX", redis.prefix.as_str()),
    ];
    failed_retry_finishes_after_a_restart(&db, &env).await;
    db.drop_db().await;
}
