//! A worker that dies mid-task: after a restart the task completes, the attempt the dead worker
//! held is recorded as abandoned, and the Codegen run is created once.

use std::time::Duration;

use crate::support::*;

#[tokio::test]
async fn a_task_whose_worker_was_killed_completes_after_restart() {
    let db = TestDb::sqlite();
    // GitHub answers so slowly that the first worker is still inside the task when it dies.
    let github = github_mock(Duration::from_secs(120)).await;
    let codegen = codegen_mock().await;
    let lease = [("WORKER_LEASE_SECONDS", "2")];
    let mut first = Server::start(&db, &github, &codegen, "all", &lease).await;
    let (status, receipt) = first
        .deliver("pull_request", &corpus("pull_request/opened.payload.json"))
        .await;
    assert_eq!(status, 200);
    let task_id = receipt["result"]["task_id"].as_str().unwrap().to_owned();
    first
        .wait_for(
            "the analysis to be running",
            Duration::from_secs(30),
            |tasks| {
                task_of(tasks, "pull_request_analysis")
                    .filter(|t| t["status"] == "running")
                    .map(|_| ())
            },
        )
        .await;
    first.crash();

    // GitHub recovers; a new process on the same database takes the task over.
    github.reset().await;
    mount_files(&github, Duration::ZERO).await;
    let second = Server::start(&db, &github, &codegen, "all", &lease).await;
    second
        .wait_for(
            "the analysis to complete",
            Duration::from_secs(60),
            |tasks| {
                task_of(tasks, "pull_request_analysis")
                    .filter(|t| t["status"] == "completed")
                    .map(|_| ())
            },
        )
        .await;
    let trigger = second
        .wait_for(
            "the codegen_trigger to complete",
            Duration::from_secs(60),
            |tasks| {
                task_of(tasks, "codegen_trigger")
                    .filter(|t| t["status"] == "completed")
                    .cloned()
            },
        )
        .await;
    assert_eq!(trigger["codegen_task_url"], RUN_URL);
    // The analysis ran again (its first attempt died mid-call); the agent run, the side effect,
    // was asked for exactly once.
    let creations = codegen
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .count();
    assert_eq!(creations, 1);
    let detail = second.get(&format!("/api/v1/tasks/{task_id}")).await;
    let executions = detail["executions"].as_array().expect("executions");
    assert!(executions.len() >= 2, "{detail:#}");
    assert_ne!(
        executions.first().unwrap()["status"],
        executions.last().unwrap()["status"],
        "{detail:#}"
    );
    db.drop_db().await;
}

#[tokio::test]
async fn sigterm_releases_a_running_task_so_the_next_worker_takes_it_at_once() {
    let db = TestDb::sqlite();
    let github = github_mock(Duration::from_secs(120)).await;
    let codegen = codegen_mock().await;
    // A long lease: only the release at shutdown can hand the task over quickly.
    let env = [
        ("WORKER_LEASE_SECONDS", "600"),
        ("SHUTDOWN_GRACE_SECONDS", "1"),
    ];
    let mut first = Server::start(&db, &github, &codegen, "all", &env).await;
    let (status, _) = first
        .deliver("pull_request", &corpus("pull_request/opened.payload.json"))
        .await;
    assert_eq!(status, 200);
    first
        .wait_for(
            "the analysis to be running",
            Duration::from_secs(30),
            |tasks| {
                task_of(tasks, "pull_request_analysis")
                    .filter(|t| t["status"] == "running")
                    .map(|_| ())
            },
        )
        .await;
    let started = std::time::Instant::now();
    assert!(first.terminate().success(), "{}", first.logs());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "shutdown took {:?}",
        started.elapsed()
    );

    github.reset().await;
    mount_files(&github, Duration::ZERO).await;
    let second = Server::start(&db, &github, &codegen, "all", &env).await;
    second
        .wait_for(
            "the released analysis to complete",
            Duration::from_secs(30),
            |tasks| {
                task_of(tasks, "pull_request_analysis")
                    .filter(|t| t["status"] == "completed")
                    .map(|_| ())
            },
        )
        .await;
    db.drop_db().await;
}
