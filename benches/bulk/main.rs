//! Bulk retry on PostgreSQL (issue 13): 100,000 failed tasks re-queued by one
//! `POST /api/v1/tasks/retry` through the real server, against a bare SQL `UPDATE` of the same
//! rows measured the same minute; then the receiver's p99 under the `load` driver with and
//! without such an operation running.
//!
//! ```sh
//! cargo build --release -p orchestrator-server
//! cargo bench -p orchestrator-benches --bench bulk
//! ```
//!
//! Steps, in a database of its own (created, migrated with the binary's `migrate`, dropped):
//! 1. Seed with `generate_series`: `BULK_TASKS / 2` `pull_request` events of repository
//!    `bench/bulk`, each with two failed tasks (`pull_request_analysis`, `codegen_trigger`,
//!    both matching the filter) and one completed task (not matching), all last changed an hour
//!    ago. An API-role process (the receiver) and a worker-role process (the operation runner)
//!    start on it; everything is paused (`POST /api/v1/admin/pause {}`), so the re-queued tasks
//!    wait instead of running and the figure is the operation's own.
//! 2. `BULK_ROUNDS` rounds, alternating: a bare `UPDATE workflow_tasks SET status = 'pending',
//!    ... WHERE status = 'failed' AND repository = 'bench/bulk'` (one statement, no event or
//!    agent-run bookkeeping), reset, then the operation from `POST` to `GET` answering
//!    `completed`, reset. Each reset is followed by `VACUUM ANALYZE`, so both start from the
//!    same table. After each operation it checks that every matching task is pending, the
//!    operation counted each once, and each event's `open_tasks` went up by exactly its two
//!    tasks (a task retried twice would count twice).
//! 3. `BULK_ROUNDS` rounds of the receiver under `LOAD_CONNECTIONS` (32) connections of signed
//!    28 KiB deliveries (the `load` bench's driver): `LOAD_SECONDS` (10) without an operation,
//!    then the same load while an operation over the same 100,000 tasks runs (measured from its
//!    `POST` until it completes).
//!
//! `BULK_DATABASE_URL` (else `TEST_DATABASE_URL`, else the tests' PostgreSQL) is where the
//! database is created; `BULK_SKIP_LOAD=1` skips step 3; `SERVER_<NAME>` variables are passed
//! to both servers as `<NAME>`.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use orchestrator_benches::driver::{
    BoxError, LoadSummary, Plan, Server, call_json, env_or, get_request, post_json_request,
    server_binary, spawn_connections, start_server,
};
use sqlx::{Connection, PgConnection, PgPool, Row};

const REPOSITORY: &str = "bench/bulk";
const FILTER: &str = r#"{"status": "failed", "repository": "bench/bulk"}"#;

/// The bare statement the operation is compared with: the same rows, the same columns a retry
/// writes on a task.
const BARE_UPDATE: &str = "UPDATE workflow_tasks SET status = 'pending', run_at = now(), \
    retry_count = 0, completed_at = NULL, error_message = NULL, lease_owner = NULL, \
    lease_expires_at = NULL, updated_at = now() WHERE status = 'failed' AND repository = $1";

const SEED_EVENTS: &str = "INSERT INTO webhook_events (delivery_id, event_type, action, source, \
    repository, payload, headers, processed, processing_completed_at, open_tasks, created_at, \
    updated_at) SELECT 'bulk-' || g, 'pull_request', 'synchronize', 'github', $1, \
    CAST('{\"bench\": true}' AS JSON), CAST('[]' AS JSONB), TRUE, now() - interval '1 hour', 0, \
    now() - interval '2 hours', now() - interval '1 hour' FROM generate_series(1, $2) g";

const SEED_TASKS: &str = "INSERT INTO workflow_tasks (task_id, webhook_event_id, task_type, \
    status, repository, pr_number, commit_sha, config, input_data, error_message, retry_count, \
    max_retries, attempts, run_at, started_at, completed_at, created_at, updated_at) \
    SELECT gen_random_uuid(), e.id, k.task_type, k.status, e.repository, e.id % 500 + 1, \
    md5(e.id::text), CAST('{}' AS JSONB), CAST('{}' AS JSONB), \
    CASE WHEN k.status = 'failed' THEN 'GitHub API error: connection refused' END, 3, 3, 4, \
    e.created_at, e.created_at, now() - interval '1 hour', e.created_at, now() - interval '1 hour' \
    FROM webhook_events e CROSS JOIN (VALUES (1, 'pull_request_analysis', 'failed'), \
    (2, 'codegen_trigger', 'failed'), (3, 'push_analysis', 'completed')) AS k(n, task_type, status) \
    WHERE e.repository = $1 ORDER BY e.id, k.n";

/// Puts the matching tasks back as seeded (failed, changed an hour ago) and their events back
/// to processed.
const RESET_TASKS: &str = "UPDATE workflow_tasks SET status = 'failed', retry_count = 3, \
    completed_at = now() - interval '1 hour', error_message = 'GitHub API error: connection refused', \
    updated_at = now() - interval '1 hour' WHERE repository = $1 AND task_type <> 'push_analysis'";
const RESET_EVENTS: &str = "UPDATE webhook_events SET open_tasks = 0, processed = TRUE, \
    processing_completed_at = now() - interval '1 hour', updated_at = now() - interval '1 hour' \
    WHERE repository = $1";

/// Matching tasks by status, and the events' `open_tasks` total and maximum.
const CHECK: &str = "SELECT \
    (SELECT count(*) FROM workflow_tasks WHERE repository = $1 AND task_type <> 'push_analysis' \
     AND status = 'pending') AS pending, \
    (SELECT count(*) FROM workflow_tasks WHERE repository = $1 AND task_type <> 'push_analysis') \
     AS matching, \
    (SELECT count(*) FROM workflow_tasks WHERE repository = $1 AND task_type = 'push_analysis' \
     AND status = 'completed') AS untouched, \
    (SELECT COALESCE(sum(open_tasks), 0) FROM webhook_events WHERE repository = $1) AS open_sum, \
    (SELECT COALESCE(max(open_tasks), 0)::int8 FROM webhook_events WHERE repository = $1) AS open_max";

/// A database of its own, dropped at the end.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    async fn create() -> Result<Self, BoxError> {
        let admin = std::env::var("BULK_DATABASE_URL")
            .or_else(|_| std::env::var("TEST_DATABASE_URL"))
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        // Hex only: safe to splice into the statement (identifiers cannot be bound).
        let name = format!("bulk_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        let status = Command::new(server_binary()?)
            .arg("migrate")
            .env("DATABASE_URL", &url)
            .env("LOG_LEVEL", "warn")
            .status()?;
        if !status.success() {
            return Err(format!("migrate failed: {status}").into());
        }
        Ok(Self { admin, name, url })
    }

    async fn drop_now(self) -> Result<(), BoxError> {
        let mut conn = PgConnection::connect(&self.admin).await?;
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await?;
        Ok(())
    }
}

/// Seeds `tasks` matching tasks (and half as many non-matching ones).
async fn seed(pool: &PgPool, tasks: i64) -> Result<(), BoxError> {
    let started = Instant::now();
    sqlx::query(SEED_EVENTS)
        .bind(REPOSITORY)
        .bind(tasks / 2)
        .execute(pool)
        .await?;
    sqlx::query(SEED_TASKS)
        .bind(REPOSITORY)
        .execute(pool)
        .await?;
    vacuum(pool).await?;
    println!(
        "bulk: seeded {} events, {tasks} failed + {} completed tasks in {:.1}s",
        tasks / 2,
        tasks / 2,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn vacuum(pool: &PgPool) -> Result<(), BoxError> {
    sqlx::raw_sql("VACUUM ANALYZE workflow_tasks, webhook_events")
        .execute(pool)
        .await?;
    Ok(())
}

async fn reset(pool: &PgPool) -> Result<(), BoxError> {
    sqlx::query(RESET_TASKS)
        .bind(REPOSITORY)
        .execute(pool)
        .await?;
    sqlx::query(RESET_EVENTS)
        .bind(REPOSITORY)
        .execute(pool)
        .await?;
    vacuum(pool).await
}

/// The bare `UPDATE`: seconds, and the rows it changed.
async fn bare_update(pool: &PgPool) -> Result<(f64, u64), BoxError> {
    let started = Instant::now();
    let done = sqlx::query(BARE_UPDATE)
        .bind(REPOSITORY)
        .execute(pool)
        .await?
        .rows_affected();
    Ok((started.elapsed().as_secs_f64(), done))
}

/// What an operation did.
struct OperationRun {
    seconds: f64,
    matched: u64,
    done: u64,
}

/// `POST /api/v1/tasks/retry` on `api`, then polls until the operation is `completed`.
async fn operation(api: SocketAddr) -> Result<OperationRun, BoxError> {
    let host = api.to_string();
    let started = Instant::now();
    let op = call_json(
        api,
        &post_json_request(&host, "/api/v1/tasks/retry", FILTER),
        202,
    )
    .await?;
    let id = op["operation_id"]
        .as_str()
        .ok_or("no operation_id in the answer")?
        .to_owned();
    loop {
        let op = call_json(
            api,
            &get_request(&host, &format!("/api/v1/operations/{id}")),
            200,
        )
        .await?;
        match op["status"].as_str() {
            Some("completed") => {
                return Ok(OperationRun {
                    seconds: started.elapsed().as_secs_f64(),
                    matched: op["matched"].as_u64().unwrap_or(0),
                    done: op["done"].as_u64().unwrap_or(0),
                });
            }
            Some("pending" | "running") => {}
            _ => return Err(format!("operation ended unexpectedly: {op}").into()),
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!("operation not completed after 600 s: {op}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every matching task pending, counted once, no other task touched.
async fn check(pool: &PgPool, tasks: i64, run: &OperationRun) -> Result<(), BoxError> {
    let row = sqlx::query(CHECK).bind(REPOSITORY).fetch_one(pool).await?;
    let get = |name: &str| row.try_get::<i64, _>(name);
    let (pending, matching, untouched) = (get("pending")?, get("matching")?, get("untouched")?);
    let (open_sum, open_max) = (get("open_sum")?, get("open_max")?);
    let expected = u64::try_from(tasks)?;
    if pending != tasks
        || matching != tasks
        || untouched != tasks / 2
        || open_sum != tasks
        || open_max != 2
        || run.matched != expected
        || run.done != expected
    {
        return Err(format!(
            "after the operation: {pending} of {matching} pending, {untouched} completed left \
             alone, events' open_tasks sum {open_sum} max {open_max}; operation matched {} \
             done {} (expected {tasks}, each once)",
            run.matched, run.done
        )
        .into());
    }
    Ok(())
}

/// Phase 2: `LOAD_CONNECTIONS` connections on the receiver; `with_operation` measures while
/// an operation runs (from its `POST` to `completed`), otherwise for `LOAD_SECONDS`.
async fn receiver_p99(
    api: &Server,
    with_operation: bool,
) -> Result<(LoadSummary, f64, Option<OperationRun>), BoxError> {
    let body = orchestrator_benches::payload("pull_request/opened.payload.json")?;
    let plan = Arc::new(Plan::new(api.addr, "/api/v1/webhooks/github".into(), body)?);
    let tasks = spawn_connections(&plan, env_or("LOAD_CONNECTIONS", 32));
    tokio::time::sleep(Duration::from_secs(1)).await;
    plan.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let run = if with_operation {
        Some(operation(api.addr).await?)
    } else {
        tokio::time::sleep(Duration::from_secs(env_or("LOAD_SECONDS", 10))).await;
        None
    };
    plan.measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    plan.stop.store(true, Ordering::Relaxed);
    Ok((LoadSummary::collect(tasks).await?, elapsed, run))
}

fn print_load(label: &str, summary: &LoadSummary, seconds: f64) {
    println!(
        "bulk: receiver {label}: {:.1}s, {:.0} deliveries/s, p50={:.2}ms p99={:.2}ms max={:.2}ms \
         non_2xx={} errors={}",
        seconds,
        summary.latencies_us.len() as f64 / seconds,
        summary.percentile_ms(50.0),
        summary.percentile_ms(99.0),
        summary.percentile_ms(100.0),
        summary.non_2xx,
        summary.errors
    );
}

async fn rate_rounds(pool: &PgPool, api: SocketAddr, tasks: i64) -> Result<(), BoxError> {
    for round in 1..=env_or("BULK_ROUNDS", 2u32) {
        let (bare, changed) = bare_update(pool).await?;
        if changed != u64::try_from(tasks)? {
            return Err(format!("the bare UPDATE changed {changed} rows, not {tasks}").into());
        }
        reset(pool).await?;
        let run = operation(api).await?;
        check(pool, tasks, &run).await?;
        reset(pool).await?;
        let (bare_rate, op_rate) = (tasks as f64 / bare, tasks as f64 / run.seconds);
        println!(
            "bulk: round {round}: bare UPDATE {bare:.2}s ({bare_rate:.0} rows/s); operation \
             {:.2}s ({op_rate:.0} tasks/s, POST to completed, all {tasks} pending, each once); \
             ratio {:.2}",
            run.seconds,
            op_rate / bare_rate
        );
    }
    Ok(())
}

async fn load_rounds(pool: &PgPool, api: &Server, tasks: i64) -> Result<(), BoxError> {
    for round in 1..=env_or("BULK_ROUNDS", 2u32) {
        let (quiet, quiet_secs, _) = receiver_p99(api, false).await?;
        print_load(
            &format!("round {round} without operation"),
            &quiet,
            quiet_secs,
        );
        let (busy, busy_secs, run) = receiver_p99(api, true).await?;
        print_load(&format!("round {round} with operation"), &busy, busy_secs);
        if let Some(run) = run {
            check(pool, tasks, &run).await?;
            println!(
                "bulk: round {round}: operation under load {:.2}s ({:.0} tasks/s); p99 with/without {:.2}",
                run.seconds,
                tasks as f64 / run.seconds,
                busy.percentile_ms(99.0) / quiet.percentile_ms(99.0)
            );
        }
        reset(pool).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // `cargo bench` passes `--bench`; nothing to parse.
    let tasks: i64 = env_or("BULK_TASKS", 100_000);
    println!(
        "bulk: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    );
    let db = Database::create().await?;
    let result = async {
        let pool = PgPool::connect(&db.url).await?;
        seed(&pool, tasks).await?;
        let max = [("DATABASE_MAX_CONNECTIONS", "32")];
        let api = start_server("api", Some(db.url.clone()), &max).await?;
        let _worker = start_server("worker", Some(db.url.clone()), &[]).await?;
        let host = api.addr.to_string();
        call_json(
            api.addr,
            &post_json_request(&host, "/api/v1/admin/pause", "{}"),
            200,
        )
        .await?;
        rate_rounds(&pool, api.addr, tasks).await?;
        if env_or("BULK_SKIP_LOAD", 0) == 0 {
            load_rounds(&pool, &api, tasks).await?;
        }
        pool.close().await;
        Ok::<_, BoxError>(())
    }
    .await;
    db.drop_now().await?;
    result
}
