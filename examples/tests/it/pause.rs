//! Issue 13: pause and resume through the real binary on SQLite, PostgreSQL, and PostgreSQL with
//! the queue on Redis: while everything is paused a delivery is stored and its task waits
//! (pending, `paused: true`), also across a restart; the resume frees it (with Redis, the task the
//! stream delivered while paused is published again) and it runs.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

async fn paused_work_waits_across_a_restart_and_runs_after_resume(
    db: &TestDb,
    extra: &[(&str, &str)],
) {
    let github = github_mock(Duration::ZERO).await;
    let codegen = codegen_mock().await;
    let mut env = vec![("CLEANUP_INTERVAL_SECONDS", "0")];
    env.extend_from_slice(extra);
    let server = Server::start(db, &github, &codegen, "all", &env).await;
    let (status, body) = server.post_admin("/api/v1/admin/pause", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .post_admin("/api/v1/admin/pause", &json!({"task_type": "nope"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["status_code"], 400, "{body}");

    let (status, receipt) = server
        .deliver("pull_request", &corpus("pull_request/opened.payload.json"))
        .await;
    assert_eq!(status, 200, "{receipt}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tasks = server.get("/api/v1/tasks").await;
    let task = task_of(&tasks, "pull_request_analysis").expect("the task is stored");
    assert_eq!(
        (&task["status"], &task["paused"]),
        (&json!("pending"), &json!(true)),
        "{tasks:#}"
    );
    // Only /health's reachability probe reached GitHub, never an analysis.
    let analysis: Vec<String> = github
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_owned())
        .filter(|p| p.starts_with("/repos/"))
        .collect();
    assert!(
        analysis.is_empty(),
        "nothing ran while paused: {analysis:?}"
    );

    // The pause survives a restart.
    drop(server);
    let server = Server::start(db, &github, &codegen, "all", &env).await;
    let pauses = server.get("/api/v1/admin/pauses").await;
    assert_eq!(pauses.as_array().map(Vec::len), Some(1), "{pauses}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tasks = server.get("/api/v1/tasks").await;
    assert_eq!(
        task_of(&tasks, "pull_request_analysis").unwrap()["status"],
        "pending"
    );

    let (status, body) = server.post_admin("/api/v1/admin/resume", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["republished"], 1, "{body}");
    server
        .wait_for("the freed task to run", Duration::from_secs(60), |tasks| {
            task_of(tasks, "pull_request_analysis")
                .filter(|t| t["status"] == "completed" && t["paused"] == false)
                .cloned()
        })
        .await;
}

#[tokio::test]
async fn paused_work_waits_and_runs_after_resume_on_sqlite() {
    let db = TestDb::sqlite();
    paused_work_waits_across_a_restart_and_runs_after_resume(&db, &[]).await;
}

#[tokio::test]
async fn paused_work_waits_and_runs_after_resume_on_postgres() {
    let db = TestDb::postgres().await;
    paused_work_waits_across_a_restart_and_runs_after_resume(&db, &[]).await;
    db.drop_db().await;
}

#[tokio::test]
async fn paused_work_waits_and_runs_after_resume_on_postgres_and_redis() {
    let db = TestDb::postgres().await;
    let redis = TestRedis::new();
    let env = [
        ("REDIS_URL", redis.url.as_str()),
        ("REDIS_KEY_PREFIX", redis.prefix.as_str()),
    ];
    paused_work_waits_across_a_restart_and_runs_after_resume(&db, &env).await;
    db.drop_db().await;
}
