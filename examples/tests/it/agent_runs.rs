//! A Codegen run is created at most once, even when a worker dies mid-call: the real binary is
//! killed between sending the run creation and recording its answer (a failpoint, and a SIGKILL
//! of one of two workers), and the next attempt finds the run by its metadata and follows it.
//! On SQLite, PostgreSQL, and PostgreSQL with the queue on Redis.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::agent_stub::codegen_stub;
use crate::support::*;

const KILL_AFTER_CREATE: (&str, &str) = ("FAILPOINTS", "codegen_trigger::after_create=return");

async fn a_worker_killed_after_the_run_was_created(db: &TestDb, extra: &[(&str, &str)]) {
    let github = github_mock(Duration::ZERO).await;
    let (codegen, stub) = codegen_stub(Duration::ZERO).await;
    let mut env = vec![("WORKER_LEASE_SECONDS", "2")];
    env.extend_from_slice(extra);
    let mut crashing = env.clone();
    crashing.push(KILL_AFTER_CREATE);

    let mut first = Server::start(db, &github, &codegen, "all", &crashing).await;
    let (status, receipt) = first
        .deliver("pull_request", &corpus("pull_request/opened.payload.json"))
        .await;
    assert_eq!(status, 200, "{receipt}");
    let exit = first.exited_within(Duration::from_secs(60));
    assert!(
        exit.is_some_and(|s| !s.success()),
        "the failpoint did not kill the process: {exit:?}\n{}",
        first.logs()
    );
    assert_eq!(stub.runs().len(), 1, "the run was created before the crash");

    // A fresh process on the same database: the attempt the dead worker held expires, and the
    // next one finds the run instead of creating another.
    let second = Server::start(db, &github, &codegen, "all", &env).await;
    let trigger = second
        .wait_for(
            "the codegen_trigger to follow the run",
            Duration::from_secs(90),
            |tasks| {
                task_of(tasks, "codegen_trigger")
                    .filter(|t| t["status"] == "completed")
                    .cloned()
            },
        )
        .await;
    let runs = stub.runs();
    assert_eq!(runs.len(), 1, "exactly one run was created: {runs:?}");
    assert_eq!(runs[0].metadata["task_id"], trigger["task_id"], "{runs:?}");
    assert_eq!(trigger["codegen_task_url"], runs[0].web_url().as_str());
    let detail = second
        .get(&format!(
            "/api/v1/tasks/{}",
            trigger["task_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(detail["output_data"]["status"], "completed", "{detail:#}");
    let statuses: Vec<&str> = detail["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.first(), Some(&"abandoned"), "{detail:#}");
    let (_, metrics) = second.get_public("/metrics").await;
    assert!(
        metrics.contains(r#"codegen_agent_tasks_total{outcome="reconciled"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_run_created_just_before_the_crash_is_found_not_created_again_on_sqlite() {
    let db = TestDb::sqlite();
    a_worker_killed_after_the_run_was_created(&db, &[]).await;
}

#[tokio::test]
async fn a_run_created_just_before_the_crash_is_found_not_created_again_on_postgres() {
    let db = TestDb::postgres().await;
    a_worker_killed_after_the_run_was_created(&db, &[]).await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_run_created_just_before_the_crash_is_found_not_created_again_on_postgres_and_redis() {
    let db = TestDb::postgres().await;
    let redis = TestRedis::new();
    let env = [
        ("REDIS_URL", redis.url.as_str()),
        ("REDIS_KEY_PREFIX", redis.prefix.as_str()),
    ];
    a_worker_killed_after_the_run_was_created(&db, &env).await;
    db.drop_db().await;
}

/// The worker id a worker process logged at start.
fn worker_id(server: &Server) -> Option<String> {
    server.logs().lines().find_map(|line| {
        let entry: Value = serde_json::from_str(line).ok()?;
        let fields = entry.get("fields")?;
        (fields.get("message")?.as_str()? == "starting workers")
            .then(|| fields.get("worker_id")?.as_str().map(str::to_owned))
            .flatten()
    })
}

/// The issue's scenario: two API and two worker processes on PostgreSQL + Redis; one worker is
/// SIGKILLed while it waits for the answer to a run creation. No pull request head SHA gets a
/// second run, and every `codegen_trigger` ends following its one run.
#[tokio::test]
async fn killing_one_of_two_workers_mid_creation_never_creates_a_second_run() {
    const PULL_REQUESTS: u64 = 10;
    let db = TestDb::postgres().await;
    let redis = TestRedis::new();
    let github = github_mock(Duration::ZERO).await;
    // The answer to a creation takes 2 s: the window in which a worker dies after sending.
    let (codegen, stub) = codegen_stub(Duration::from_secs(2)).await;
    let env = [
        ("REDIS_URL", redis.url.as_str()),
        ("REDIS_KEY_PREFIX", redis.prefix.as_str()),
        ("WORKER_LEASE_SECONDS", "2"),
        ("WORKER_CONCURRENCY", "4"),
    ];
    let apis = [
        Server::start(&db, &github, &codegen, "api", &env).await,
        Server::start(&db, &github, &codegen, "api", &env).await,
    ];
    let mut workers = [
        Server::start(&db, &github, &codegen, "worker", &env).await,
        Server::start(&db, &github, &codegen, "worker", &env).await,
    ];
    let ids: Vec<String> = workers
        .iter()
        .map(|w| worker_id(w).unwrap_or_else(|| panic!("no worker id in\n{}", w.logs())))
        .collect();
    for n in 1..=PULL_REQUESTS {
        let (status, receipt) = apis[(n % 2) as usize]
            .deliver("pull_request", &pull_request(n))
            .await;
        assert_eq!(status, 200, "{receipt}");
    }

    // Wait for a codegen_trigger whose creation Codegen has received while its worker still
    // waits for the answer, and kill exactly that worker.
    let started = Instant::now();
    let victim = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no run creation in flight"
        );
        let sent: Vec<Value> = stub
            .runs()
            .iter()
            .map(|r| r.metadata["task_id"].clone())
            .collect();
        let tasks = apis[0].get("/api/v1/tasks?limit=1000").await;
        let in_flight = tasks.as_array().unwrap().iter().find(|t| {
            t["task_type"] == "codegen_trigger"
                && t["status"] == "running"
                && sent.contains(&t["task_id"])
        });
        if let Some(task) = in_flight {
            let detail = apis[0]
                .get(&format!(
                    "/api/v1/tasks/{}",
                    task["task_id"].as_str().unwrap()
                ))
                .await;
            let owner = detail["executions"]
                .as_array()
                .and_then(|e| e.last())
                .and_then(|e| e["worker_id"].as_str())
                .map(str::to_owned);
            if let Some(index) = owner.and_then(|o| ids.iter().position(|id| *id == o)) {
                break index;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    workers[victim].crash();

    let triggers = apis[1]
        .wait_for(
            "every codegen_trigger to end",
            Duration::from_secs(180),
            |tasks| {
                let triggers: Vec<Value> = tasks
                    .as_array()?
                    .iter()
                    .filter(|t| t["task_type"] == "codegen_trigger")
                    .cloned()
                    .collect();
                let done = triggers.len() as u64 == PULL_REQUESTS
                    && triggers
                        .iter()
                        .all(|t| t["status"] == "completed" || t["status"] == "failed");
                done.then_some(triggers)
            },
        )
        .await;

    // No pull request head got a second run.
    let mut per_head: BTreeMap<String, usize> = BTreeMap::new();
    for run in stub.runs() {
        let key = format!(
            "{}#{}@{}",
            run.metadata["repository"], run.metadata["pr_number"], run.metadata["head_sha"]
        );
        *per_head.entry(key).or_default() += 1;
    }
    assert!(
        per_head.values().all(|&n| n == 1),
        "a head SHA got a second run: {per_head:?}"
    );
    // Every trigger follows its one run; one whose worker died before sending (if any) waits for
    // a person instead of guessing.
    let runs = stub.runs();
    for trigger in &triggers {
        let run = runs
            .iter()
            .find(|r| r.metadata["task_id"] == trigger["task_id"]);
        match (trigger["status"].as_str(), run) {
            (Some("completed"), Some(run)) => {
                assert_eq!(trigger["codegen_task_url"], run.web_url().as_str())
            }
            (Some("failed"), None) => {
                let detail = apis[1]
                    .get(&format!(
                        "/api/v1/tasks/{}",
                        trigger["task_id"].as_str().unwrap()
                    ))
                    .await;
                assert_eq!(
                    detail["output_data"]["status"], "needs_attention",
                    "{detail:#}"
                );
            }
            other => panic!("unexpected end {other:?}: {trigger:#}"),
        }
    }
    let (_, metrics) = workers[1 - victim].get_public("/metrics").await;
    assert!(
        metrics.contains(r#"codegen_agent_tasks_total{outcome="reconciled"}"#),
        "the killed worker's creation was reconciled by the other:\n{metrics}"
    );
    drop(workers);
    drop(apis);
    db.drop_db().await;
}
