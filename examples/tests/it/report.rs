//! Reporting back on the pull request (issue 17) through the real server, with only a token
//! (commit statuses) against a wiremock GitHub: a pull request ends with a `success` status
//! linking the Codegen run, on SQLite, PostgreSQL, PostgreSQL + Redis, and with the API and the
//! workers in separate processes (the worker reports; the API process does not).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

const STATUSES: &str = r"^/repos/Codertocat/Hello-World/statuses/[0-9a-f]{40}$";

async fn accept_statuses(github: &MockServer) {
    Mock::given(method("POST"))
        .and(path_regex(STATUSES))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .mount(github)
        .await;
}

/// The status bodies GitHub received, in order.
async fn statuses(github: &MockServer) -> Vec<Value> {
    github
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path().contains("/statuses/"))
        .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
        .collect()
}

/// Waits until the last status is `success`, then checks the whole sequence.
async fn wait_for_success(github: &MockServer) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = statuses(github).await;
        if seen.last().is_some_and(|s| s["state"] == "success") {
            // Nothing more is sent once the state is final.
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let after = statuses(github).await;
            assert_eq!(
                after.len(),
                seen.len(),
                "sent again after success: {after:#?}"
            );
            return seen;
        }
        assert!(Instant::now() < deadline, "no success status: {seen:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn check_sequence(seen: &[Value]) {
    assert!(seen.len() >= 2, "{seen:#?}");
    assert_eq!(seen[0]["state"], "pending", "{seen:#?}");
    assert!(
        seen.iter().all(|s| s["context"] == "webhook-orchestrator"),
        "{seen:#?}"
    );
    let last = seen.last().unwrap();
    assert_eq!(last["description"], "Codegen run finished", "{seen:#?}");
    assert_eq!(last["target_url"], RUN_URL, "{seen:#?}");
    assert!(
        seen[..seen.len() - 1]
            .iter()
            .all(|s| s["state"] == "pending"),
        "{seen:#?}"
    );
    // Every status differs from the one before (only changes are sent).
    assert!(seen.windows(2).all(|w| w[0] != w[1]), "{seen:#?}");
}

async fn reports_on(db: &TestDb, extra: &[(&str, &str)]) {
    let github = github_mock(Duration::ZERO).await;
    accept_statuses(&github).await;
    let codegen = codegen_mock().await;
    let mut env = vec![("REPORT_TO_GITHUB", "statuses")];
    env.extend_from_slice(extra);
    let mut server = Server::start(db, &github, &codegen, "all", &env).await;
    let (status, _) = server
        .deliver("pull_request", &corpus("pull_request/opened.payload.json"))
        .await;
    assert_eq!(status, 200);
    check_sequence(&wait_for_success(&github).await);
    let (_, metrics) = server.get_public("/metrics").await;
    assert!(
        metrics.contains(r#"github_reports_total{kind="status",outcome="ok"}"#),
        "{metrics}"
    );
    assert!(server.terminate().success(), "{}", server.logs());
}

#[tokio::test]
async fn a_pull_request_is_reported_with_commit_statuses_on_sqlite() {
    let db = TestDb::sqlite();
    reports_on(&db, &[]).await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_pull_request_is_reported_with_commit_statuses_on_postgres() {
    let db = TestDb::postgres().await;
    reports_on(&db, &[]).await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_pull_request_is_reported_with_commit_statuses_on_postgres_with_redis() {
    let db = TestDb::postgres().await;
    let redis = TestRedis::new();
    reports_on(
        &db,
        &[
            ("REDIS_URL", &redis.url),
            ("REDIS_KEY_PREFIX", &redis.prefix),
        ],
    )
    .await;
    assert!(redis.key_count() > 0, "the Redis queue was not used");
    drop(redis);
    db.drop_db().await;
}

#[tokio::test]
async fn with_api_and_workers_apart_the_worker_reports() {
    let db = TestDb::postgres().await;
    let github = github_mock(Duration::ZERO).await;
    accept_statuses(&github).await;
    let codegen = codegen_mock().await;
    let env = [("REPORT_TO_GITHUB", "statuses")];
    let api = Server::start(&db, &github, &codegen, "api", &env).await;
    let worker_env = [
        ("REPORT_TO_GITHUB", "statuses"),
        ("GITHUB_WEBHOOK_SECRET", ""),
    ];
    let worker = Server::start(&db, &github, &codegen, "worker", &worker_env).await;
    let (status, _) = api
        .deliver("pull_request", &corpus("pull_request/opened.payload.json"))
        .await;
    assert_eq!(status, 200);
    check_sequence(&wait_for_success(&github).await);
    let (_, worker_metrics) = worker.get_public("/metrics").await;
    assert!(
        worker_metrics.contains(r#"github_reports_total{kind="status",outcome="ok"}"#),
        "{worker_metrics}"
    );
    let (_, api_metrics) = api.get_public("/metrics").await;
    assert!(
        !api_metrics.contains("github_reports_total{"),
        "the API process reported: {api_metrics}"
    );
    drop((api, worker));
    db.drop_db().await;
}
