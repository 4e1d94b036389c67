//! Superseding stale pull-request work against the real binary, on SQLite, PostgreSQL and
//! PostgreSQL with the queue on Redis: a newer head SHA cancels the pending analysis of the
//! older one (`superseded_by`, the error naming the new SHA), a late delivery of an older head
//! cancels nothing newer (its own task is stale), `pull_request.closed` cancels what is left;
//! the task list filters by `superseded_by` / `superseded`; `tasks_cancelled_total` counts each.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// A `pull_request.<action>` payload for pull request 7 at head `sha`, updated at `updated_at`.
fn pull_request(action: &str, sha: &str, updated_at: &str) -> Vec<u8> {
    let mut body: Value =
        serde_json::from_slice(&corpus("pull_request/synchronize.payload.json")).unwrap();
    body["action"] = action.into();
    body["number"] = 7.into();
    body["pull_request"]["number"] = 7.into();
    body["pull_request"]["head"]["sha"] = sha.into();
    body["pull_request"]["updated_at"] = updated_at.into();
    serde_json::to_vec(&body).unwrap()
}

async fn deliver_task(server: &Server, body: &[u8]) -> String {
    let (status, receipt) = server.deliver("pull_request", body).await;
    assert_eq!(status, 200, "{receipt}");
    receipt["result"]["task_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no task: {receipt}"))
        .to_owned()
}

async fn newer_heads_supersede_older_work(db: &TestDb, extra: &[(&str, &str)]) {
    let github = github_mock(Duration::ZERO).await;
    let codegen = codegen_mock().await;
    // No worker: every task stays pending unless superseded.
    let server = Server::start(db, &github, &codegen, "api", extra).await;
    let (a, b, c) = ("a".repeat(40), "b".repeat(40), "c".repeat(40));

    let first = deliver_task(
        &server,
        &pull_request("synchronize", &a, "2026-11-30T10:00:00Z"),
    )
    .await;
    let second = deliver_task(
        &server,
        &pull_request("synchronize", &b, "2026-11-30T10:05:00Z"),
    )
    .await;
    let detail = server.get(&format!("/api/v1/tasks/{first}")).await;
    assert_eq!(detail["status"], "cancelled", "{detail:#}");
    assert_eq!(detail["superseded_by"], second.as_str(), "{detail:#}");
    assert!(
        detail["error_message"].as_str().unwrap().contains(&b),
        "{detail:#}"
    );

    // Head c is older than b (it arrives late): b stays, c's own task is stale.
    let late = deliver_task(
        &server,
        &pull_request("synchronize", &c, "2026-11-30T10:01:00Z"),
    )
    .await;
    let detail = server.get(&format!("/api/v1/tasks/{second}")).await;
    assert_eq!(detail["status"], "pending", "{detail:#}");
    assert_eq!(detail["superseded_by"], Value::Null, "{detail:#}");
    let detail = server.get(&format!("/api/v1/tasks/{late}")).await;
    assert_eq!(detail["status"], "cancelled", "{detail:#}");
    assert_eq!(detail["superseded_by"], second.as_str(), "{detail:#}");

    let listed = server
        .get(&format!("/api/v1/tasks?superseded_by={second}"))
        .await;
    let mut ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected = vec![first.as_str(), late.as_str()];
    expected.sort();
    assert_eq!(ids, expected, "{listed:#}");
    let open = server.get("/api/v1/tasks?superseded=false").await;
    assert_eq!(open.as_array().unwrap().len(), 1, "{open:#}");
    assert_eq!(open[0]["task_id"], second.as_str());
    let bad = reqwest::Client::new()
        .get(format!("{}/api/v1/tasks?superseded_by=nope", server.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert_eq!(
        server
            .metric(r#"tasks_cancelled_total{reason="superseded"}"#)
            .await,
        Some(2.0)
    );

    // Closing the pull request cancels its pending work.
    let (status, receipt) = server
        .deliver(
            "pull_request",
            &pull_request("closed", &b, "2026-11-30T10:09:00Z"),
        )
        .await;
    assert_eq!(status, 200, "{receipt}");
    let detail = server.get(&format!("/api/v1/tasks/{second}")).await;
    assert_eq!(detail["status"], "cancelled", "{detail:#}");
    assert!(
        detail["error_message"].as_str().unwrap().contains("closed"),
        "{detail:#}"
    );
    assert_eq!(
        server
            .metric(r#"tasks_cancelled_total{reason="closed"}"#)
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn newer_heads_supersede_older_work_on_sqlite() {
    let db = TestDb::sqlite();
    newer_heads_supersede_older_work(&db, &[]).await;
}

#[tokio::test]
async fn newer_heads_supersede_older_work_on_postgres() {
    let db = TestDb::postgres().await;
    newer_heads_supersede_older_work(&db, &[]).await;
    db.drop_db().await;
}

#[tokio::test]
async fn newer_heads_supersede_older_work_on_postgres_and_redis() {
    let db = TestDb::postgres().await;
    let redis = TestRedis::new();
    let env = [
        ("REDIS_URL", redis.url.as_str()),
        ("REDIS_KEY_PREFIX", redis.prefix.as_str()),
    ];
    newer_heads_supersede_older_work(&db, &env).await;
    db.drop_db().await;
}
