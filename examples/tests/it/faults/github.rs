//! GitHub answers with its secondary rate limit (403 + `Retry-After`) under steady traffic.

use std::time::{Duration, Instant};

use crate::support::ledger::{assert_acknowledged_stored, assert_ran_once, wait_finished};
use crate::support::standin::{CodegenStand, GitHubStand};
use crate::support::traffic::Traffic;
use crate::support::*;

/// GitHub's `Retry-After`: it answers 403 to every call for this long.
const WINDOW: Duration = Duration::from_secs(6);

#[tokio::test]
async fn a_github_secondary_rate_limit_pauses_every_call_for_its_retry_after() {
    let db = TestDb::sqlite();
    let (github_mock, github) = GitHubStand::start().await;
    let (codegen_mock, codegen) = CodegenStand::start().await;
    let env = [("WORKER_CONCURRENCY", "8")];
    let server = Server::start(&db, &github_mock, &codegen_mock, "all", &env).await;
    let traffic = Traffic::start(&server.base, 2, Duration::from_millis(200), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;

    github.secondary_limit(WINDOW);
    let armed = Instant::now();
    let limited = loop {
        if let Some(at) = github.limit_started() {
            break at;
        }
        assert!(armed.elapsed() < Duration::from_secs(10), "no GitHub call");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    while limited.elapsed() < WINDOW + Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sent = traffic.stop().await;

    let calls = github.calls();
    // Only the calls already on their way when the limit began reached GitHub during it (they
    // are given 2 s, a wide margin on a busy machine); then nothing until Retry-After was over.
    let paused: Vec<_> = calls
        .iter()
        .filter(|c| c.at > limited + Duration::from_secs(2) && c.at < limited + WINDOW)
        .collect();
    assert!(paused.is_empty(), "calls during the pause: {paused:#?}");
    let forbidden = calls.iter().filter(|c| c.status == 403).count();
    assert!(forbidden <= 8, "{forbidden} calls got 403");
    let resumed = calls
        .iter()
        .filter(|c| c.at >= limited + WINDOW && c.status == 200)
        .count();
    assert!(resumed >= 5, "calls after the pause: {resumed}");

    // Nothing failed, nothing used an attempt, everything ran once.
    let prs = assert_acknowledged_stored(&server, &sent).await;
    assert_eq!(prs.len(), sent.len(), "every delivery was accepted");
    let tasks = wait_finished(&server, &prs, Duration::from_secs(60)).await;
    assert_ran_once(&server, &tasks, &prs, &github, &codegen).await;
    let mut deferred = 0;
    for task in &tasks {
        let detail = server
            .get(&format!(
                "/api/v1/tasks/{}",
                task["task_id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(detail["retry_count"], 0, "{detail:#}");
        deferred += detail["executions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["error_message"]
                    .as_str()
                    .is_some_and(|m| m.contains("rate limit"))
            })
            .count();
    }
    assert!(
        deferred >= 5,
        "{deferred} attempts deferred by the rate limit"
    );
    assert!(server.logs().contains("GitHub rate limit: pausing calls"));
    db.drop_db().await;
}
