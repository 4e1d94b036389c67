//! Issue 13: `POST /api/v1/admin/cleanup` answers the spec's `{"status": "cleanup_triggered",
//! "task_id"}`, and that id is a real `cleanup` task a worker runs, its output holding the
//! counts; the schedule submits the same task type. The real binary on SQLite, PostgreSQL, and
//! PostgreSQL with the queue on Redis (the API process publishes the task).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

async fn cleanup_is_a_task(db: &TestDb, extra: &[(&str, &str)]) {
    let github = github_mock(Duration::ZERO).await;
    let codegen = codegen_mock().await;
    let mut env = vec![("CLEANUP_INTERVAL_SECONDS", "1")];
    env.extend_from_slice(extra);
    let server = Server::start(db, &github, &codegen, "all", &env).await;

    let (status, body) = server.post_admin("/api/v1/admin/cleanup", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cleanup_triggered", "{body}");
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{body}");
    let task_id = body["task_id"].as_str().unwrap().to_owned();

    let done = server
        .wait_for(
            "the cleanup task to run",
            Duration::from_secs(30),
            |tasks| {
                tasks
                    .as_array()?
                    .iter()
                    .find(|t| t["task_id"] == task_id.as_str() && t["status"] == "completed")
                    .cloned()
            },
        )
        .await;
    assert_eq!(done["task_type"], "cleanup");
    let detail = server.get(&format!("/api/v1/tasks/{task_id}")).await;
    let output = &detail["output_data"];
    for count in [
        "events_deleted",
        "tasks_deleted",
        "executions_deleted",
        "reports_deleted",
    ] {
        assert!(output[count].is_u64(), "{count}: {detail:#}");
    }
    assert_eq!(output["trigger"], "manual", "{detail:#}");

    // The schedule (every second here) submits the same task type.
    let scheduled: Value = server
        .wait_for(
            "a scheduled cleanup task",
            Duration::from_secs(30),
            |tasks| {
                tasks
                    .as_array()?
                    .iter()
                    .find(|t| {
                        t["task_type"] == "cleanup"
                            && t["task_id"] != task_id.as_str()
                            && t["status"] == "completed"
                    })
                    .cloned()
            },
        )
        .await;
    let detail = server
        .get(&format!(
            "/api/v1/tasks/{}",
            scheduled["task_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(detail["output_data"]["trigger"], "schedule", "{detail:#}");
}

#[tokio::test]
async fn cleanup_is_a_task_on_sqlite() {
    let db = TestDb::sqlite();
    cleanup_is_a_task(&db, &[]).await;
}

#[tokio::test]
async fn cleanup_is_a_task_on_postgres() {
    let db = TestDb::postgres().await;
    cleanup_is_a_task(&db, &[]).await;
    db.drop_db().await;
}

#[tokio::test]
async fn cleanup_is_a_task_on_postgres_and_redis() {
    let db = TestDb::postgres().await;
    let redis = TestRedis::new();
    let env = [
        ("REDIS_URL", redis.url.as_str()),
        ("REDIS_KEY_PREFIX", redis.prefix.as_str()),
    ];
    cleanup_is_a_task(&db, &env).await;
    db.drop_db().await;
}
