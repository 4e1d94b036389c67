//! Redis losing its data mid-run (`FLUSHDB` of a private `redis-server`, what a restart without
//! persistence leaves) while tasks wait in its stream: they run within 30 s, not after the
//! sweeper's 300 s, and the loss is logged and counted.

use std::time::{Duration, Instant};

use crate::support::*;

const ANALYSES: usize = 4;

fn analyses<'a>(tasks: &'a serde_json::Value, status: &str) -> Vec<&'a serde_json::Value> {
    tasks
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|t| t["task_type"] == "pull_request_analysis" && t["status"] == status)
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn tasks_waiting_in_a_flushed_redis_run_within_30_s_on_postgres() {
    let Some(redis) = PrivateRedis::start() else {
        return;
    };
    let db = TestDb::postgres().await;
    // One task at a time, each held up by GitHub: the others wait in the stream.
    let github = github_mock(Duration::from_secs(2)).await;
    let codegen = codegen_mock().await;
    let env = [
        ("REDIS_URL", redis.url()),
        ("REDIS_KEY_PREFIX", "e2e".to_owned()),
        ("WORKER_CONCURRENCY", "1".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::start(&db, &github, &codegen, "all", &env).await;
    for _ in 0..ANALYSES {
        let (status, _) = server
            .deliver("pull_request", &corpus("pull_request/opened.payload.json"))
            .await;
        assert_eq!(status, 200);
    }
    server
        .wait_for(
            "one running analysis, the others waiting",
            Duration::from_secs(30),
            |tasks| {
                (analyses(tasks, "running").len() == 1 && analyses(tasks, "pending").len() >= 2)
                    .then_some(())
            },
        )
        .await;

    assert_eq!(redis.cli(&["flushdb"]), "OK");
    let flushed = Instant::now();
    server
        .wait_for(
            "every analysis to complete",
            Duration::from_secs(30),
            |tasks| (analyses(tasks, "completed").len() == ANALYSES).then_some(()),
        )
        .await;
    let took = flushed.elapsed();
    eprintln!("every analysis completed {took:?} after FLUSHDB");
    assert!(took < Duration::from_secs(30));

    let (status, metrics) = server.get_public("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"redis_queue_resets_total{reason="group_missing"} 1"#),
        "{metrics}"
    );
    let logs = server.logs();
    assert_eq!(
        logs.lines()
            .filter(|l| l.contains("redis lost the task queue"))
            .count(),
        1,
        "one warning line:\n{logs}"
    );
    drop(server);
    db.drop_db().await;
}
