//! A pull request from delivery to a completed `codegen_trigger` with its run URL, through the
//! public API only, on SQLite and on PostgreSQL.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

async fn follow_pull_request(db: &TestDb, extra: &[(&str, &str)]) {
    let github = github_mock(Duration::ZERO).await;
    let codegen = codegen_mock().await;
    let mut server = Server::start(db, &github, &codegen, "all", extra).await;

    let (status, health) = server.get_public("/health").await;
    assert_eq!(status, 200, "{health}");
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["checks"]["database"], "healthy");
    assert_eq!(health["checks"]["github_api"], "healthy");

    let body = corpus("pull_request/opened.payload.json");
    let (status, receipt) = server.deliver("pull_request", &body).await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["status"], "accepted");
    let analysis_id = receipt["result"]["task_id"].as_str().unwrap().to_owned();

    let trigger = server
        .wait_for(
            "a completed codegen_trigger",
            Duration::from_secs(60),
            |tasks| {
                task_of(tasks, "codegen_trigger")
                    .filter(|t| t["status"] == "completed")
                    .cloned()
            },
        )
        .await;
    assert_eq!(trigger["codegen_task_url"], RUN_URL, "{trigger:#}");
    assert_eq!(trigger["repository"], "Codertocat/Hello-World");

    let detail = server
        .get(&format!(
            "/api/v1/tasks/{}",
            trigger["task_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(detail["parent_task_id"], analysis_id.as_str(), "{detail:#}");
    assert_eq!(detail["codegen_task_id"], "4242", "{detail:#}");
    let analysis = server.get(&format!("/api/v1/tasks/{analysis_id}")).await;
    assert_eq!(analysis["status"], "completed", "{analysis:#}");
    assert_eq!(
        analysis["codegen_task_url"], RUN_URL,
        "the parent task shows the run too: {analysis:#}"
    );

    // The Codegen run was asked for once, with the token, about this pull request.
    let created: Vec<_> = codegen
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST")
        .collect();
    assert_eq!(created.len(), 1);
    let request: Value = serde_json::from_slice(&created[0].body).unwrap();
    assert!(
        request["prompt"]
            .as_str()
            .unwrap()
            .contains("Codertocat/Hello-World"),
        "{request:#}"
    );

    // The figures agree with what happened.
    let metrics = server.get("/api/v1/metrics").await;
    assert_eq!(metrics["webhook_events_total"], 1, "{metrics:#}");
    assert_eq!(metrics["workflow_tasks_total"], 2, "{metrics:#}");
    assert_eq!(metrics["tasks_by_status"]["completed"], 2, "{metrics:#}");
    let (status, prometheus) = server.get_public("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "webhook_events_total{event_type=\"pull_request\",status=\"accepted\"} 1",
        "codegen_agent_tasks_total{outcome=\"created\"} 1",
        "codegen_agent_tasks_total{outcome=\"completed\"} 1",
        "workflow_tasks_total{status=\"completed\",task_type=\"codegen_trigger\"} 1",
        "circuit_breaker_state{name=\"github\"} 0",
    ] {
        assert!(prometheus.contains(line), "missing {line} in\n{prometheus}");
    }

    // A forged delivery is refused and stored nowhere.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/webhooks/github", server.base))
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", "forged-1")
        .header(
            "x-hub-signature-256",
            orchestrator_server::send::sign(b"wrong", &body),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        server.get("/api/v1/metrics").await["webhook_events_total"],
        1
    );

    // SIGTERM: a clean exit.
    assert!(server.terminate().success(), "{}", server.logs());

    // Logs: JSON lines, carrying task ids and correlation ids, never a secret.
    let logs = server.logs();
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let has = |needle: &str| lines.iter().any(|l| l.to_string().contains(needle));
    assert!(has(&analysis_id), "no log line names the task");
    assert!(
        has("correlation_id"),
        "no log line carries a correlation id"
    );
    for secret in [SECRET, ADMIN_TOKEN, CODEGEN_TOKEN, GITHUB_TOKEN] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}

#[tokio::test]
async fn a_pull_request_reaches_a_completed_codegen_run_on_sqlite() {
    let db = TestDb::sqlite();
    follow_pull_request(&db, &[]).await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_pull_request_reaches_a_completed_codegen_run_on_postgres() {
    let db = TestDb::postgres().await;
    follow_pull_request(&db, &[]).await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_pull_request_reaches_a_completed_codegen_run_on_postgres_with_the_redis_queue() {
    let db = TestDb::postgres().await;
    let redis = TestRedis::new();
    follow_pull_request(
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
async fn without_codegen_credentials_the_run_is_skipped_with_a_clear_output() {
    let db = TestDb::sqlite();
    let github = github_mock(Duration::ZERO).await;
    let codegen = codegen_mock().await;
    let server = Server::start(
        &db,
        &github,
        &codegen,
        "all",
        &[("CODEGEN_TOKEN", ""), ("CODEGEN_ORG_ID", "")],
    )
    .await;
    let (status, _) = server
        .deliver("pull_request", &corpus("pull_request/opened.payload.json"))
        .await;
    assert_eq!(status, 200);
    let trigger = server
        .wait_for(
            "a finished codegen_trigger",
            Duration::from_secs(60),
            |tasks| {
                task_of(tasks, "codegen_trigger")
                    .filter(|t| t["status"] == "completed")
                    .cloned()
            },
        )
        .await;
    let detail = server
        .get(&format!(
            "/api/v1/tasks/{}",
            trigger["task_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(detail["output_data"]["status"], "skipped", "{detail:#}");
    assert!(
        codegen.received_requests().await.unwrap().is_empty(),
        "Codegen was called"
    );
    assert!(
        server
            .logs()
            .contains("CODEGEN_TOKEN and CODEGEN_ORG_ID are not set")
    );

    // `send` signs a corpus file and posts it; `probe` sees a healthy server.
    let addr = server.base.trim_start_matches("http://");
    let bin = env!("CARGO_BIN_EXE_orchestrator-server");
    let file = orchestrator_server::corpus_dir().join("github-payloads/push/payload.json");
    let sent = std::process::Command::new(bin)
        .arg("send")
        .arg(&file)
        .env_clear()
        .env("GITHUB_WEBHOOK_SECRET", SECRET)
        .env("BIND_ADDR", addr)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&sent.stdout);
    assert!(
        sent.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert!(
        out.contains("HTTP 200") && out.contains("\"event_type\":\"push\""),
        "{out}"
    );
    assert_eq!(
        server
            .get("/api/v1/webhooks/events?event_type=push")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let probe = std::process::Command::new(bin)
        .arg("probe")
        .env_clear()
        .env("BIND_ADDR", addr)
        .status()
        .unwrap();
    assert!(probe.success());
    let (status, body) = server.get_public("/health/live").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
}

#[tokio::test]
async fn an_invalid_configuration_stops_the_start_with_one_line_per_problem() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orchestrator-server"))
        .args(["serve"])
        .env_clear()
        .env("BIND_ADDR", "nowhere")
        .env("CODEGEN_TOKEN", "x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    for line in [
        "GITHUB_WEBHOOK_SECRET: required",
        "CODEGEN_ORG_ID: required when CODEGEN_TOKEN is set",
        "BIND_ADDR: \"nowhere\"",
    ] {
        assert!(err.contains(line), "{line} missing in\n{err}");
    }
}

#[tokio::test]
async fn the_scheduled_cleanup_removes_finished_work() {
    let db = TestDb::sqlite();
    let github = github_mock(Duration::ZERO).await;
    let codegen = codegen_mock().await;
    let env = [
        ("CLEANUP_INTERVAL_SECONDS", "1"),
        ("RETENTION_EVENTS_DAYS", "0"),
        ("RETENTION_TASKS_DAYS", "0"),
    ];
    let server = Server::start(&db, &github, &codegen, "all", &env).await;
    let (status, _) = server.deliver("ping", &corpus("ping/payload.json")).await;
    assert_eq!(status, 200);
    let (status, _) = server
        .deliver("pull_request", &corpus("pull_request/opened.payload.json"))
        .await;
    assert_eq!(status, 200);
    // Everything finishes, then the schedule (not an API call) removes it.
    let started = std::time::Instant::now();
    loop {
        let events = server.get("/api/v1/webhooks/events").await;
        if events.as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "events never cleaned up: {events:#}\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Only the cleanup tasks themselves are left (the latest ones; older ones go too).
    let tasks = server.get("/api/v1/tasks").await;
    assert!(
        tasks
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["task_type"] == "cleanup"),
        "{tasks:#}"
    );
    assert!(server.logs().contains("scheduled cleanup task submitted"));
}

#[tokio::test]
async fn api_and_worker_processes_split_the_work_on_postgres() {
    let db = TestDb::postgres().await;
    let github = github_mock(Duration::ZERO).await;
    let codegen = codegen_mock().await;
    let api = Server::start(&db, &github, &codegen, "api", &[]).await;
    let (status, _) = api
        .deliver("pull_request", &corpus("pull_request/opened.payload.json"))
        .await;
    assert_eq!(status, 200);
    // No worker yet: the task waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tasks = api.get("/api/v1/tasks").await;
    assert_eq!(
        task_of(&tasks, "pull_request_analysis").unwrap()["status"],
        "pending",
        "{tasks:#}"
    );

    let worker = Server::start(
        &db,
        &github,
        &codegen,
        "worker",
        &[("GITHUB_WEBHOOK_SECRET", "")],
    )
    .await;
    let (status, _) = worker.get_public("/api/v1/tasks").await;
    assert_eq!(status, 404, "a worker process serves no API");
    let (status, metrics) = worker.get_public("/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("circuit_breaker_state"), "{metrics}");
    api.wait_for(
        "the worker to finish the chain",
        Duration::from_secs(60),
        |tasks| {
            task_of(tasks, "codegen_trigger")
                .filter(|t| t["status"] == "completed")
                .map(|_| ())
        },
    )
    .await;
    drop((api, worker));
    db.drop_db().await;
}
