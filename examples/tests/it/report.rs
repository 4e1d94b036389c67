//! Reporting back on the pull request (issue 17) through the real server, with only a token
//! (commit statuses) against a wiremock GitHub: a pull request ends with a `success` status
//! linking the Codegen run, on SQLite, PostgreSQL, PostgreSQL + Redis, and with the API and the
//! workers in separate processes (the worker reports; the API process does not). With a GitHub
//! App (check runs), `CODEGEN_MANUAL_FIX_REPOS`: the "Ask Codegen to fix" button end to end.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
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

/// The GitHub App of the check-run tests: the throw-away key of the client tests, its
/// installation 1's token, and the failed lint check its analysis reads.
async fn github_app_mock() -> MockServer {
    let github = github_mock(Duration::ZERO).await;
    let expires_at = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    Mock::given(method("POST"))
        .and(path("/app/installations/1/access_tokens"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"token": "ghs_e2e", "expires_at": expires_at})),
        )
        .mount(&github)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/check-runs/128620228")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 128620228, "name": "Octocoders-linter", "status": "completed",
            "conclusion": "failure", "head_sha": SHA,
            "output": {"title": "2 lint errors", "summary": "src/lib.rs: unused import"}})))
        .mount(&github)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{REPO}/check-runs")))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 555})))
        .mount(&github)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("{REPO}/check-runs/555")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 555})))
        .mount(&github)
        .await;
    github
}

const REPO: &str = "/repos/Codertocat/Hello-World";
const SHA: &str = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";

fn app_key_path() -> String {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../orchestrator-codegen/tests/it/test_app_key.pem")
        .to_string_lossy()
        .into_owned()
}

/// The check-run calls GitHub received, in order: (method, body).
async fn check_runs(github: &MockServer) -> Vec<(String, Value)> {
    github
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            r.url.path().starts_with(&format!("{REPO}/check-runs")) && r.method.as_str() != "GET"
        })
        .map(|r| {
            let body = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            (r.method.to_string(), body)
        })
        .collect()
}

async fn wait_for_check(
    github: &MockServer,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Vec<(String, Value)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = check_runs(github).await;
        if seen.last().is_some_and(|(_, b)| done(b)) {
            return seen;
        }
        assert!(Instant::now() < deadline, "no {what}: {seen:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `CODEGEN_MANUAL_FIX_REPOS` through the real server: a failed check of that repository gets an
/// `action_required` check run with the button and no Codegen run; pressing the button starts
/// exactly one run, which the same check run follows to `success`.
#[tokio::test]
async fn with_automatic_runs_off_the_ask_codegen_button_starts_exactly_one_run() {
    let db = TestDb::sqlite();
    let github = github_app_mock().await;
    let codegen = codegen_mock().await;
    let key = app_key_path();
    let env = [
        ("GITHUB_APP_ID", "7"),
        ("GITHUB_APP_PRIVATE_KEY", key.as_str()),
        ("REPORT_TO_GITHUB", "checks"),
        ("REPORT_INTERVAL_SECONDS", "1"),
        ("CODEGEN_MANUAL_FIX_REPOS", "codertocat/hello-world"),
    ];
    let mut server = Server::start(&db, &github, &codegen, "all", &env).await;
    let mut lint: Value =
        serde_json::from_slice(&corpus("check_run/completed.payload.json")).unwrap();
    lint["check_run"]["conclusion"] = json!("failure");
    lint["installation"] = json!({"id": 1});
    let (status, _) = server
        .deliver("check_run", &serde_json::to_vec(&lint).unwrap())
        .await;
    assert_eq!(status, 200);
    let seen = wait_for_check(&github, "action_required check", |b| {
        b["conclusion"] == "action_required"
    })
    .await;
    let asking = &seen.last().unwrap().1;
    assert_eq!(asking["name"], "webhook-orchestrator / Octocoders-linter");
    assert_eq!(asking["actions"][0]["identifier"], "codegen_fix");
    let analysis = asking["external_id"].as_str().unwrap().to_owned();
    let runs = |requests: Vec<wiremock::Request>| {
        requests
            .iter()
            .filter(|r| r.method.as_str() == "POST" && r.url.path().ends_with("/agent/run"))
            .count()
    };
    assert_eq!(
        runs(codegen.received_requests().await.unwrap()),
        0,
        "no automatic run"
    );

    // GitHub sends the press of our check's button.
    let mut press = lint.clone();
    press["action"] = json!("requested_action");
    press["check_run"]["id"] = json!(555);
    press["check_run"]["name"] = json!("webhook-orchestrator / Octocoders-linter");
    press["check_run"]["app"]["id"] = json!(7);
    press["check_run"]["conclusion"] = json!("action_required");
    press["check_run"]["external_id"] = json!(analysis);
    press["requested_action"] = json!({"identifier": "codegen_fix"});
    let (status, answer) = server
        .deliver("check_run", &serde_json::to_vec(&press).unwrap())
        .await;
    assert_eq!(status, 200, "{answer}");
    let seen = wait_for_check(&github, "success", |b| b["conclusion"] == "success").await;
    let last = &seen.last().unwrap();
    assert_eq!(last.0, "PATCH");
    assert_eq!(last.1["details_url"], RUN_URL);
    assert_eq!(last.1["actions"], json!([]));
    assert_eq!(
        last.1["external_id"], analysis,
        "the same check run follows the run"
    );
    assert_eq!(
        seen.iter().filter(|(m, _)| m == "POST").count(),
        1,
        "one check run: {seen:#?}"
    );
    assert_eq!(
        runs(codegen.received_requests().await.unwrap()),
        1,
        "exactly one run"
    );
    let tasks = server.get("/api/v1/tasks?limit=1000").await;
    let trigger = task_of(&tasks, "codegen_trigger").expect("the button's run task");
    assert_eq!(trigger["parent_task_id"], analysis, "{tasks:#}");
    assert!(server.terminate().success(), "{}", server.logs());
    db.drop_db().await;
}
