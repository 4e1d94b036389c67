//! The agent budget end to end: with a global budget of one Codegen run creation per minute,
//! two pull requests delivered create exactly one run; the other `codegen_trigger` waits (a
//! deferral: not failed, no attempt used, an execution `deferred` with the budget's reason, its
//! next run after the window), `agent_budget_deferrals_total` counts it and `/health` shows the
//! budget used up. The real binary on SQLite, PostgreSQL and PostgreSQL + Redis; nothing waits
//! for the minute to pass: the stored state is asserted.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Connection;

use crate::agent_stub::codegen_stub;
use crate::support::*;

/// The `run_at` column of a task, read from the database itself.
async fn stored_run_at(db: &TestDb, task_id: &str) -> DateTime<Utc> {
    let id = uuid::Uuid::parse_str(task_id).unwrap();
    let sql = "SELECT run_at FROM workflow_tasks WHERE task_id = $1";
    if db.url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar::<_, DateTime<Utc>>(sql)
            .bind(id)
            .fetch_one(&mut conn)
            .await
            .unwrap()
    } else {
        // SQLite keeps times as microseconds since the epoch.
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        let micros: i64 = sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        DateTime::from_timestamp_micros(micros).unwrap()
    }
}

/// How many agent-run intents the ledger holds for a task, read from the database itself.
async fn ledger_intents(db: &TestDb, task_id: &str) -> i64 {
    let id = uuid::Uuid::parse_str(task_id).unwrap();
    let sql = "SELECT COUNT(*) FROM agent_runs WHERE task_id = $1";
    if db.url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(&mut conn)
            .await
            .unwrap()
    } else {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(&mut conn)
            .await
            .unwrap()
    }
}

/// The `codegen_trigger` tasks of the list, once there are `n`.
fn triggers(tasks: &Value, n: usize) -> Option<Vec<Value>> {
    let found: Vec<Value> = tasks
        .as_array()?
        .iter()
        .filter(|t| t["task_type"] == "codegen_trigger")
        .cloned()
        .collect();
    (found.len() == n).then_some(found)
}

/// Waits until the task's detail shows a `deferred` execution; the detail.
async fn deferred_detail(server: &Server, task_id: &str) -> Value {
    let started = Instant::now();
    loop {
        let detail = server.get(&format!("/api/v1/tasks/{task_id}")).await;
        let deferred = detail["executions"]
            .as_array()
            .is_some_and(|e| e.iter().any(|x| x["status"] == "deferred"));
        if deferred {
            return detail;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no deferred execution: {detail:#}\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn one_run_per_minute_defers_the_second(db: &TestDb, extra: &[(&str, &str)]) {
    let github = github_mock(Duration::ZERO).await;
    let (codegen, stub) = codegen_stub(Duration::ZERO).await;
    let mut env = vec![("AGENT_BUDGET_PER_MINUTE", "1")];
    env.extend_from_slice(extra);
    let server = Server::start(db, &github, &codegen, "all", &env).await;
    for pr in [101, 102] {
        let (status, receipt) = server.deliver("pull_request", &pull_request(pr)).await;
        assert_eq!(status, 200, "{receipt}");
    }

    // One trigger gets the run; the other has been deferred (its detail shows it).
    let both = server
        .wait_for(
            "two codegen_trigger tasks, one with a run",
            Duration::from_secs(60),
            |tasks| {
                triggers(tasks, 2).filter(|t| t.iter().any(|x| !x["codegen_task_url"].is_null()))
            },
        )
        .await;
    let waiting = both
        .iter()
        .find(|t| t["codegen_task_url"].is_null())
        .expect("one trigger without a run");
    let waiting_id = waiting["task_id"].as_str().unwrap().to_owned();
    let detail = deferred_detail(&server, &waiting_id).await;
    let now = Utc::now();

    let runs = stub.runs();
    assert_eq!(
        runs.len(),
        1,
        "exactly one Codegen run was created: {runs:?}"
    );
    assert_ne!(runs[0].metadata["task_id"], waiting_id.as_str());

    // Deferred, not failed: no attempt used, the reason on the execution, no ledger intent.
    assert!(
        ["pending", "retrying"].contains(&detail["status"].as_str().unwrap()),
        "{detail:#}"
    );
    assert_eq!(detail["retry_count"], 0, "{detail:#}");
    assert!(detail["codegen_task_id"].is_null(), "{detail:#}");
    assert_eq!(
        ledger_intents(db, &waiting_id).await,
        0,
        "a waiting task holds no intent"
    );
    let executions = detail["executions"].as_array().unwrap();
    assert!(
        executions.iter().all(|e| e["status"] == "deferred"),
        "{detail:#}"
    );
    let reason = executions[0]["error_message"].as_str().unwrap();
    assert!(
        reason.contains(
            "waiting for the agent budget (global limit of 1 run creation(s) per minute)"
        ),
        "{reason}"
    );
    // The wait ends when the first run's slot leaves the minute, and the next run is then.
    let marker = &detail["output_data"]["agent_budget"];
    assert_eq!(marker["scope"], "global", "{detail:#}");
    let until: DateTime<Utc> = marker["until"].as_str().unwrap().parse().unwrap();
    assert!(
        until > now + chrono::Duration::seconds(30) && until <= now + chrono::Duration::seconds(60),
        "waits for the window: until {until}, now {now}"
    );
    let run_at = stored_run_at(db, &waiting_id).await;
    assert!(
        run_at >= until && run_at < until + chrono::Duration::seconds(5),
        "next run {run_at} right after the window ends at {until}"
    );
    // The operator sees that instant in the task's JSON, without SQL.
    let shown: DateTime<Utc> = detail["next_run_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(shown, run_at, "{detail:#}");

    assert_eq!(
        server
            .metric(r#"agent_budget_deferrals_total{scope="global"}"#)
            .await,
        Some(1.0)
    );
    assert_eq!(
        server.metric("agent_budget_remaining_slots").await,
        Some(0.0)
    );
    let (_, health) = server.health().await;
    let budget = &health["agent_budget"];
    assert_eq!(budget["per_minute"], 1, "{health:#}");
    assert_eq!(budget["remaining"], 0, "{health:#}");
    assert_eq!(budget["max_runs_per_head"], 1, "{health:#}");
    let next_free: DateTime<Utc> = budget["next_free_at"].as_str().unwrap().parse().unwrap();
    // The same slot: the deferral's `until` is the worker's clock plus the wait it computed,
    // read a few microseconds apart from the slot's own time.
    assert!(
        (next_free - until).num_milliseconds().abs() < 1_000,
        "next free {next_free} is the deferral's until {until}: {health:#}"
    );
    let backend = if extra.is_empty() { "memory" } else { "redis" };
    assert_eq!(budget["backend"], backend, "{health:#}");

    // Still exactly one run a moment later (the deferred task did not slip through).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stub.runs().len(), 1);
}

#[tokio::test]
async fn a_budget_of_one_per_minute_creates_one_run_and_defers_the_other_on_sqlite() {
    let db = TestDb::sqlite();
    one_run_per_minute_defers_the_second(&db, &[]).await;
}

#[tokio::test]
async fn a_budget_of_one_per_minute_creates_one_run_and_defers_the_other_on_postgres_and_redis() {
    let db = TestDb::postgres().await;
    let redis = TestRedis::new();
    let env = [
        ("REDIS_URL", redis.url.as_str()),
        ("REDIS_KEY_PREFIX", redis.prefix.as_str()),
    ];
    one_run_per_minute_defers_the_second(&db, &env).await;
    assert!(
        redis.key_count() > 0,
        "the budget's log lives under the test's prefix"
    );
    db.drop_db().await;
}

/// The builder in-process on the memory store with a manual clock: the deferred task's next run
/// is exactly one minute after the first creation, and advancing the clock past it creates the
/// second run (no waiting for a real minute).
#[tokio::test]
async fn with_a_manual_clock_the_deferred_run_is_created_once_the_minute_has_passed() {
    use std::sync::Arc;

    use orchestrator_core::clock::{Clock, ManualClock};
    use orchestrator_core::memory::MemoryStore;
    use orchestrator_core::secret::Secret;
    use orchestrator_core::store::{Page, TaskFilter, TaskStore};
    use orchestrator_core::task::{TaskStatus, TaskType};

    use crate::builder::{deliver, serve};

    let github = github_mock(Duration::ZERO).await;
    let (codegen, stub) = codegen_stub(Duration::ZERO).await;
    let clock = Arc::new(ManualClock::default());
    let start = clock.now();
    let store = Arc::new(MemoryStore::new());
    let (github_uri, codegen_uri) = (github.uri(), codegen.uri());
    let orchestrator = orchestrator_server::Orchestrator::builder()
        .store(store.clone())
        .clock(clock.clone())
        .webhook_secret(SECRET)
        .admin_token(ADMIN_TOKEN)
        .rate_limits(orchestrator_axum::RateLimits::OFF)
        .configure(move |c| {
            c.github.base_url = github_uri.parse().unwrap();
            c.github.token = Some(Secret::new(GITHUB_TOKEN));
            c.codegen.base_url = codegen_uri.parse().unwrap();
            c.codegen.token = Some(Secret::new(CODEGEN_TOKEN));
            c.codegen.org_id = Some(ORG_ID as i64);
            c.handlers.budget.per_minute = Some(1);
            c.report_to = Some(orchestrator_core::report::ReportMode::Off);
            c.recovery.interval = Duration::ZERO;
        })
        .build()
        .await
        .unwrap();
    let running = serve(&orchestrator).await;
    for pr in [201, 202] {
        let answer = deliver(&running.base, "pull_request", &pull_request(pr)).await;
        assert_eq!(answer.status(), 200);
    }

    // One run; the other trigger deferred to exactly one minute after the first creation.
    let triggers = || async {
        let filter = TaskFilter {
            task_type: Some(TaskType::CODEGEN_TRIGGER),
            ..TaskFilter::default()
        };
        store.list_tasks(&filter, Page::default()).await.unwrap()
    };
    let started = Instant::now();
    let waiting = loop {
        let tasks = triggers().await;
        let deferred = tasks.iter().find(|t| {
            t.codegen_task_id.is_none()
                && t.output_data
                    .as_ref()
                    .is_some_and(|o| o.get("agent_budget").is_some())
        });
        if let (2, Some(t)) = (tasks.len(), deferred) {
            break t.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{tasks:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(stub.runs().len(), 1);
    assert!(matches!(
        waiting.status,
        TaskStatus::Pending | TaskStatus::Retrying
    ));
    assert_eq!(waiting.retry_count, 0);
    assert_eq!(waiting.run_at, start + chrono::Duration::seconds(60));
    let detail = store.get_task(waiting.task_id).await.unwrap().unwrap();
    let statuses: Vec<_> = detail
        .executions
        .iter()
        .map(|e| e.status.as_str())
        .collect();
    assert_eq!(statuses, ["deferred"]);

    // A second before the minute is up nothing changes; at the minute the run is created.
    clock.advance(Duration::from_secs(59));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stub.runs().len(), 1);
    clock.advance(Duration::from_secs(1));
    let started = Instant::now();
    while stub.runs().len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the second run was not created"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let runs = stub.runs();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1].metadata["task_id"], waiting.task_id.to_string());
    let detail = store.get_task(waiting.task_id).await.unwrap().unwrap();
    assert_eq!(detail.task.retry_count, 0, "waiting used no attempt");
    running.stop.cancel();
    running.served.await.unwrap().unwrap();
}
