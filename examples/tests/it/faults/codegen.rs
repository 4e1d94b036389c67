//! Codegen answers 500 to every run creation for a while, under steady traffic.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::sleep_until;
use crate::support::ledger::{assert_acknowledged_stored, assert_ran_once, wait_finished};
use crate::support::standin::{CodegenStand, GitHubStand};
use crate::support::traffic::Traffic;
use crate::support::*;

/// How long Codegen fails. The scenario in production terms is a 60 s storm against the default
/// 30 s recovery (the breaker opens, its probe fails once, then it closes); here the recovery
/// is 3 s, so a 15 s storm goes through the same sequence with more failed probes, in a
/// quarter of the time.
const STORM: Duration = Duration::from_secs(15);
const RECOVERY_SECONDS: u64 = 3;
const THRESHOLD: usize = 5;
const CONCURRENCY: usize = 8;

#[tokio::test]
async fn a_codegen_5xx_storm_opens_the_breaker_defers_tasks_and_all_finish_after_it() {
    let db = TestDb::sqlite();
    let (github_mock, github) = GitHubStand::start().await;
    let (codegen_mock, codegen) = CodegenStand::start().await;
    let recovery = RECOVERY_SECONDS.to_string();
    let threshold = THRESHOLD.to_string();
    let concurrency = CONCURRENCY.to_string();
    let env = [
        ("CIRCUIT_BREAKER_RECOVERY_SECONDS", recovery.as_str()),
        ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", threshold.as_str()),
        ("WORKER_CONCURRENCY", concurrency.as_str()),
    ];
    let server = Server::start(&db, &github_mock, &codegen_mock, "all", &env).await;
    let traffic = Traffic::start(&server.base, 2, Duration::from_millis(200), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;

    codegen.fail(true);
    let storm = traffic.now();
    let stormed = Instant::now();
    // The breaker opens: /health and the metric say so.
    wait_until_open(&server).await;
    let gauge = server
        .metric("circuit_breaker_state{name=\"codegen\"}")
        .await;
    assert_eq!(gauge, Some(2.0), "open is 2");
    sleep_until(&traffic, storm + STORM).await;

    codegen.fail(false);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = traffic.stop().await;
    let refused = codegen.refused();

    let unacknowledged: Vec<_> = sent.iter().filter(|s| !s.acknowledged()).collect();
    assert!(unacknowledged.is_empty(), "{unacknowledged:#?}");
    let prs = assert_acknowledged_stored(&server, &sent).await;
    let tasks = wait_finished(&server, &prs, Duration::from_secs(60)).await;
    // Each task ran once: one run per codegen_trigger, none failed.
    assert_ran_once(&server, &tasks, &prs, &github, &codegen).await;

    // The open breaker held the calls back: Codegen saw the calls that opened it, those already
    // on their way then, and one probe per recovery period; not one call per task and attempt.
    let storm_tasks = tasks
        .iter()
        .filter(|t| t["task_type"] == "codegen_trigger")
        .count();
    let most = THRESHOLD + CONCURRENCY + (STORM.as_secs() / RECOVERY_SECONDS) as usize + 1;
    assert!(
        !refused.is_empty() && refused.len() <= most,
        "{} calls refused during the storm (at most {most}); {storm_tasks} triggers; at {:?}",
        refused.len(),
        refused
            .iter()
            .map(|at| at.duration_since(stormed))
            .collect::<Vec<_>>()
    );
    // Deferrals used no attempt: only the calls before the one that opened the breaker did.
    let (retries, waited) = attempts_used_and_breaker_waits(&server, &tasks).await;
    assert!(
        retries < THRESHOLD as u64,
        "{retries} attempts used by the storm"
    );
    assert!(
        waited >= 5,
        "{waited} attempts deferred by the open breaker"
    );

    // Recovered: closed again.
    let (_, health) = server.health().await;
    assert_eq!(health["breakers"]["codegen"], "closed", "{health:#}");
    let gauge = server
        .metric("circuit_breaker_state{name=\"codegen\"}")
        .await;
    assert_eq!(gauge, Some(0.0));
    db.drop_db().await;
}

/// Waits (at most 10 s) until `/health` shows the Codegen breaker open, and checks what it says.
async fn wait_until_open(server: &Server) {
    let started = Instant::now();
    loop {
        let (status, health) = server.health().await;
        if health["breakers"]["codegen"] == "open" {
            assert_eq!(status, 200, "{health:#}");
            assert_eq!(health["status"], "degraded", "{health:#}");
            assert!(
                health["reasons"]["breaker:codegen"].is_string(),
                "{health:#}"
            );
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the breaker did not open: {health:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Over the `codegen_trigger` tasks: attempts used (retries), and executions deferred by the
/// open breaker.
async fn attempts_used_and_breaker_waits(server: &Server, tasks: &[Value]) -> (u64, usize) {
    let (mut retries, mut waited) = (0, 0);
    for task in tasks.iter().filter(|t| t["task_type"] == "codegen_trigger") {
        let detail = server
            .get(&format!(
                "/api/v1/tasks/{}",
                task["task_id"].as_str().unwrap()
            ))
            .await;
        retries += detail["retry_count"].as_u64().unwrap();
        waited += detail["executions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["status"] == "deferred"
                    && e["error_message"]
                        .as_str()
                        .is_some_and(|m| m.contains("circuit breaker"))
            })
            .count();
    }
    (retries, waited)
}
