//! Store throughput on each database: ingest commits per second of a 28 KiB delivery (with one
//! task) and claim + complete per second of no-op tasks by 8 workers, on PostgreSQL (a scratch
//! schema, dropped afterwards) and SQLite (a temporary file, `synchronous=FULL` and `NORMAL`).
//! PostgreSQL also measures claiming with a million finished rows in the task table.
//!
//! `cargo bench -p orchestrator-benches --bench store`. Environment: `BENCH_DATABASE_URL`
//! (default `TEST_DATABASE_URL`, then `postgres://postgres@127.0.0.1:5432/test`),
//! `STORE_BENCH_SECS` (10), `STORE_BENCH_DB` (`all`, `postgres`, `sqlite`),
//! `STORE_BENCH_BATCH` (claim batch, 16), `STORE_BENCH_FINISHED_ROWS` (1000000; 0 skips),
//! `STORE_BENCH_DURABLE_QUEUE=1` (PostgreSQL queue writes wait for the WAL flush),
//! `STORE_BENCH_INGEST_ONLY=1` (skip the claim measurements).
//! Compare with `benches/pgbench/run.sh` run the same minute (see docs/benchmarks.md).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use orchestrator_core::event::NewEvent;
use orchestrator_core::queue::{StoreQueue, TaskQueue};
use orchestrator_core::store::{BatchStore, EventStore, Finish, NewDelivery};
use orchestrator_core::task::{NewTask, TaskSpec, TaskType};
use orchestrator_sqlx::{PgStore, PoolOptions, SqlStore, SqliteDurability, SqliteStore};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

const CLIENTS: usize = 8;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn payload() -> Bytes {
    let dir = std::env::var("WEBHOOK_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    let path = dir.join("github-payloads/pull_request/closed.payload.json");
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())))
}

fn delivery(payload: &Bytes) -> (NewEvent, Vec<NewTask>) {
    let now = Utc::now();
    let id = uuid::Uuid::new_v4().to_string();
    let event = NewEvent {
        delivery_id: id.clone(),
        event_type: "pull_request".into(),
        action: Some("closed".into()),
        source: "github".into(),
        repository: Some("octo/repo".into()),
        installation_id: None,
        payload: payload.clone(),
        headers: vec![
            ("x-github-event".into(), "pull_request".into()),
            ("x-github-delivery".into(), id),
        ],
        received_at: now,
        parse_error: None,
    };
    (event, vec![noop_task()])
}

fn noop_task() -> NewTask {
    let mut spec = TaskSpec::new(TaskType::PULL_REQUEST_ANALYSIS);
    spec.repository = Some("octo/repo".into());
    NewTask::new(spec, 3, Utc::now())
}

/// 8 clients ingest unique deliveries for `secs`; commits per second.
async fn ingest_rate(store: &SqlStore, payload: &Bytes, secs: u64) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (store, payload, count) = (store.clone(), payload.clone(), Arc::clone(&count));
        clients.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let (event, tasks) = delivery(&payload);
                store.ingest(event, tasks).await.expect("ingest");
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for c in clients {
        c.await.expect("client");
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// 8 clients ingest batches of `batch` unique deliveries through `BatchStore::ingest_batch`
/// (what the core's group commit does with concurrent requests); deliveries per second.
async fn batch_ingest_rate(store: &SqlStore, payload: &Bytes, batch: usize, secs: u64) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (store, payload, count) = (store.clone(), payload.clone(), Arc::clone(&count));
        clients.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let deliveries = (0..batch)
                    .map(|_| {
                        let (event, tasks) = delivery(&payload);
                        let prepared = store.prepare(&event);
                        (NewDelivery::new(event, tasks), prepared)
                    })
                    .collect();
                for outcome in store.ingest_batch(deliveries).await {
                    outcome.expect("ingest");
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for c in clients {
        c.await.expect("client");
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Inserts `n` runnable no-op tasks, one per delivery (as most deliveries cause one task), from
/// 8 clients.
async fn prefill(store: &SqlStore, n: usize) {
    let small = Bytes::from_static(b"{}");
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (store, small) = (store.clone(), small.clone());
        let share = n / CLIENTS + usize::from(c < n % CLIENTS);
        clients.push(tokio::spawn(async move {
            for _ in 0..share {
                let (event, tasks) = delivery(&small);
                store.ingest(event, tasks).await.expect("prefill");
            }
        }));
    }
    for c in clients {
        c.await.expect("prefill client");
    }
}

/// 8 workers claim (`batch` at a time) and complete tasks for `secs` or until none is left.
async fn claim_rate(store: &SqlStore, batch: usize, secs: u64) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut workers = Vec::new();
    for w in 0..CLIENTS {
        let (store, count) = (StoreQueue::new(Arc::new(store.clone())), Arc::clone(&count));
        workers.push(tokio::spawn(async move {
            let worker = format!("bench-{w}");
            while Instant::now() < deadline {
                let claims = store
                    .claim(&worker, batch, Duration::from_secs(60), Utc::now())
                    .await
                    .expect("claim");
                if claims.is_empty() {
                    break;
                }
                for claim in claims {
                    let done = Finish::Completed {
                        output: serde_json::json!({}),
                        followups: vec![],
                    };
                    store
                        .finish(&claim, done, Utc::now())
                        .await
                        .expect("finish");
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for w in workers {
        w.await.expect("worker");
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

async fn measure(name: &str, store: &SqlStore, payload: &Bytes, secs: u64, batch: usize) {
    let ingest = ingest_rate(store, payload, secs).await;
    println!(
        "{name}: ingest {} B delivery + 1 task: {ingest:.0} commits/s ({CLIENTS} clients)",
        payload.len()
    );
    let grouped = batch_ingest_rate(store, payload, 8, secs).await;
    println!("{name}: ingest_batch of 8 deliveries, {CLIENTS} clients: {grouped:.0} deliveries/s");
    if env("STORE_BENCH_INGEST_ONLY", 0) == 1 {
        return;
    }
    prefill(store, env("STORE_BENCH_TASKS", 60_000)).await;
    let claims = claim_rate(store, batch, secs).await;
    println!(
        "{name}: claim+complete no-op tasks: {claims:.0}/s ({CLIENTS} workers, batch {batch})"
    );
}

async fn postgres(payload: &Bytes, secs: u64, batch: usize) {
    let url = std::env::var("BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("TEST_DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("wo_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&url)
        .await
        .expect("PostgreSQL is unreachable");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .expect("schema");
    let connect: PgConnectOptions = url.parse().expect("url");
    let options = PoolOptions {
        max_connections: CLIENTS as u32 + 2,
        durable_queue_writes: env("STORE_BENCH_DURABLE_QUEUE", 0) == 1,
        ..PoolOptions::default()
    };
    let pg = PgStore::connect_with(
        connect.options([("search_path", schema.as_str())]),
        &options,
    )
    .await
    .expect("pg");
    let store = SqlStore::from(pg.clone());
    measure("postgres", &store, payload, secs, batch).await;

    let finished: i64 = if env("STORE_BENCH_INGEST_ONLY", 0) == 1 {
        0
    } else {
        env("STORE_BENCH_FINISHED_ROWS", 1_000_000)
    };
    if finished > 0 {
        let started = Instant::now();
        sqlx::query(
            "INSERT INTO workflow_tasks (task_id, task_type, status, config, input_data, max_retries, \
             run_at, completed_at, created_at, updated_at) SELECT gen_random_uuid(), 'push_analysis', \
             'completed', '{}', '{}', 3, now(), now(), now(), now() FROM generate_series(1, $1)",
        )
        .bind(finished)
        .execute(pg.pool())
        .await
        .expect("finished rows");
        sqlx::query("ANALYZE workflow_tasks")
            .execute(pg.pool())
            .await
            .expect("analyze");
        println!(
            "postgres: inserted {finished} finished rows in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        prefill(&store, env("STORE_BENCH_TASKS", 60_000)).await;
        let claims = claim_rate(&store, batch, secs).await;
        println!("postgres: claim+complete with {finished} finished rows: {claims:.0}/s");
        let started = Instant::now();
        let one = StoreQueue::new(Arc::new(store.clone()))
            .claim("probe", 1, Duration::from_secs(60), Utc::now())
            .await
            .expect("claim");
        println!(
            "postgres: one claim with {finished} finished rows took {:?} ({} task)",
            started.elapsed(),
            one.len()
        );
    }
    store.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .expect("drop schema");
}

async fn sqlite(payload: &Bytes, secs: u64, batch: usize) {
    for durability in [SqliteDurability::Full, SqliteDurability::Normal] {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let options = PoolOptions {
            sqlite_durability: durability,
            ..PoolOptions::default()
        };
        let store = SqlStore::from(SqliteStore::connect(&url, &options).await.expect("sqlite"));
        measure(
            &format!("sqlite ({durability:?})"),
            &store,
            payload,
            secs,
            batch,
        )
        .await;
        store.close().await;
    }
}

fn main() {
    let secs: u64 = env("STORE_BENCH_SECS", 10);
    let batch: usize = env("STORE_BENCH_BATCH", 16);
    let which: String = env("STORE_BENCH_DB", "all".to_owned());
    let payload = payload();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        if which == "all" || which == "postgres" {
            postgres(&payload, secs, batch).await;
        }
        if which == "all" || which == "sqlite" {
            sqlite(&payload, secs, batch).await;
        }
    });
}
