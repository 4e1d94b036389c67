//! Redis Streams queue throughput, beside the database queue.
//!
//! 1. The broker's own cycle: `XADD` (pipelined) -> `XREADGROUP` -> `XACK`+`XDEL` of task ids,
//!    one client (batches of 1 and 100) and eight clients sharing the consumer group.
//! 2. End to end with the state changes: no-op tasks ingested one per delivery and published by
//!    8 clients, then claimed (batch 16) and completed by 8 workers — `RedisQueue` (one
//!    instance, i.e. one connection, per worker) over a store, beside that store's own queue.
//!    Stores: in-memory, and PostgreSQL (a scratch schema, dropped afterwards).
//!
//! `cargo bench -p orchestrator-benches --bench redis_queue`. Environment: `TEST_REDIS_URL`
//! (default `redis://127.0.0.1:6379`; keys under a fresh `bench-*` prefix, deleted at the end),
//! `BENCH_DATABASE_URL` (default `TEST_DATABASE_URL`, then
//! `postgres://postgres@127.0.0.1:5432/test`), `REDIS_BENCH_SECS` (5), `REDIS_BENCH_TASKS`
//! (20000), `REDIS_BENCH_DB` (`all`, `memory`, `postgres`). Compare with `redis-benchmark` run the
//! same minute (see docs/benchmarks.md).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use orchestrator_core::clock::{Clock, SystemClock};
use orchestrator_core::event::NewEvent;
use orchestrator_core::memory::MemoryStore;
use orchestrator_core::queue::{StoreQueue, TaskQueue, TaskRef};
use orchestrator_core::store::{AttemptStore, EventStore, Finish, IngestOutcome, TaskStore};
use orchestrator_core::task::{NewTask, TaskSpec, TaskType};
use orchestrator_redis::{QueueConfig, RedisConfig, RedisConnection, RedisQueue, TaskStream};
use orchestrator_sqlx::{PgStore, PoolOptions, SqlStore};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use uuid::Uuid;

const CLIENTS: usize = 8;
const BATCH: usize = 16;
const LEASE: Duration = Duration::from_secs(60);

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Deletes the bench's keys when dropped.
struct Prefix(String);

impl Drop for Prefix {
    fn drop(&mut self) {
        let Ok(mut conn) =
            redis::Client::open(redis_url().as_str()).and_then(|c| c.get_connection())
        else {
            return;
        };
        let mut cursor = 0u64;
        loop {
            let reply: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}:*", self.0))
                .arg("COUNT")
                .arg(1000)
                .query(&mut conn);
            let Ok((next, keys)) = reply else { return };
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}

fn connection(prefix: &Prefix) -> RedisConnection {
    RedisConnection::new(RedisConfig {
        prefix: prefix.0.clone(),
        ..RedisConfig::new(redis_url())
    })
    .unwrap()
}

fn queue_config(name: &str) -> QueueConfig {
    QueueConfig {
        name: name.to_owned(),
        block: Duration::from_millis(50),
        ..QueueConfig::default()
    }
}

/// One broker cycle of `batch` messages for `consumer`: publish, read them all, acknowledge.
async fn raw_cycle(stream: &TaskStream, consumer: &str, batch: usize) {
    let now = Utc::now();
    let refs: Vec<TaskRef> = (0..batch)
        .map(|_| TaskRef {
            task_id: Uuid::now_v7(),
            run_at: now,
        })
        .collect();
    stream.apply(now, &[], &refs).await.unwrap();
    let mut acks = Vec::with_capacity(batch);
    while acks.len() < batch {
        let got = stream.read(consumer, batch - acks.len()).await.unwrap();
        acks.extend(got.into_iter().map(|d| d.entry_id));
    }
    stream.apply(now, &acks, &[]).await.unwrap();
}

/// `clients` streams (own connections) cycling batches of `batch` for `secs`; messages/s.
async fn cycle_rate(prefix: &Prefix, name: &str, clients: usize, batch: usize, secs: u64) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for i in 0..clients {
        let stream = TaskStream::new(connection(prefix), queue_config(name)).unwrap();
        let count = count.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                raw_cycle(&stream, &format!("c{i}"), batch).await;
                count.fetch_add(batch as u64, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn delivery() -> (NewEvent, Vec<NewTask>) {
    let now = Utc::now();
    let event = NewEvent {
        delivery_id: Uuid::new_v4().to_string(),
        event_type: "push".into(),
        action: None,
        source: "github".into(),
        repository: Some("octo/repo".into()),
        installation_id: None,
        payload: Bytes::from_static(b"{}"),
        headers: Vec::new(),
        received_at: now,
        parse_error: None,
        prepared: Default::default(),
    };
    (
        event,
        vec![NewTask::new(TaskSpec::new(TaskType::PUSH_ANALYSIS), 3, now)],
    )
}

/// 8 clients ingest `n` one-task deliveries, each published after its commit; deliveries/s.
async fn ingest_rate(store: Arc<dyn EventStore>, queue: Arc<dyn TaskQueue>, n: usize) -> f64 {
    let start = Instant::now();
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (store, queue) = (store.clone(), queue.clone());
        let share = n / CLIENTS + usize::from(c < n % CLIENTS);
        clients.push(tokio::spawn(async move {
            for _ in 0..share {
                let (event, tasks) = delivery();
                let run_at = tasks[0].run_at;
                if let IngestOutcome::Accepted { task_ids, .. } =
                    store.ingest(event, tasks).await.unwrap()
                {
                    let refs: Vec<TaskRef> = task_ids
                        .into_iter()
                        .map(|task_id| TaskRef { task_id, run_at })
                        .collect();
                    queue.publish(&refs).await.unwrap();
                }
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// 8 workers (one queue each) claim and complete until `n` tasks are done; tasks/s.
async fn claim_rate(queues: Vec<Arc<dyn TaskQueue>>, n: usize) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(300);
    let mut workers = Vec::new();
    for (w, queue) in queues.into_iter().enumerate() {
        let done = done.clone();
        workers.push(tokio::spawn(async move {
            let worker = format!("bench-{w}");
            while (done.load(Ordering::Relaxed) as usize) < n && Instant::now() < deadline {
                for claim in queue
                    .claim(&worker, BATCH, LEASE, Utc::now())
                    .await
                    .unwrap()
                {
                    let finish = Finish::Completed {
                        output: serde_json::json!({}),
                        followups: Vec::new(),
                    };
                    queue.finish(&claim, finish, Utc::now()).await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(done.load(Ordering::Relaxed) as usize, n, "all tasks ran");
    n as f64 / start.elapsed().as_secs_f64()
}

/// Ingest + publish, then claim + complete, of `n` tasks through `queues` (over `store`).
async fn end_to_end(
    label: &str,
    store: Arc<dyn EventStore>,
    queues: Vec<Arc<dyn TaskQueue>>,
    n: usize,
) {
    let ingest = ingest_rate(store, queues[0].clone(), n).await;
    let claims = claim_rate(queues, n).await;
    println!(
        "{label}: ingest+publish {ingest:.0} deliveries/s; claim+complete {claims:.0} tasks/s"
    );
}

fn redis_queues<S: TaskStore + AttemptStore>(
    prefix: &Prefix,
    name: &str,
    store: Arc<S>,
) -> Vec<Arc<dyn TaskQueue>> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    (0..CLIENTS)
        .map(|_| {
            let queue = RedisQueue::new(
                connection(prefix),
                queue_config(name),
                store.clone(),
                store.clone(),
                clock.clone(),
            )
            .unwrap();
            Arc::new(queue) as Arc<dyn TaskQueue>
        })
        .collect()
}

async fn memory(prefix: &Prefix, n: usize) {
    let store = Arc::new(MemoryStore::new());
    let own: Arc<dyn TaskQueue> = Arc::new(StoreQueue::new(store.clone()));
    let queues = vec![own; CLIENTS];
    end_to_end("memory store, its own queue", store, queues, n).await;
    let store = Arc::new(MemoryStore::new());
    let queues = redis_queues(prefix, "e2e-memory", store.clone());
    end_to_end("memory store + redis streams", store, queues, n).await;
}

async fn postgres(prefix: &Prefix, n: usize) {
    let url = std::env::var("BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("TEST_DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("wo_bench_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&url)
        .await
        .expect("PostgreSQL is unreachable");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .expect("schema");
    let connect: PgConnectOptions = url.parse().expect("url");
    let options = PoolOptions {
        max_connections: 2 * CLIENTS as u32 + 2,
        ..PoolOptions::default()
    };
    let pg = PgStore::connect_with(
        connect.options([("search_path", schema.as_str())]),
        &options,
    )
    .await
    .expect("pg");
    let store = SqlStore::from(pg);

    let shared = Arc::new(store.clone());
    let own: Arc<dyn TaskQueue> = Arc::new(StoreQueue::new(shared.clone()));
    let queues = vec![own; CLIENTS];
    end_to_end(
        "postgres store, its own queue (SKIP LOCKED)",
        shared.clone(),
        queues,
        n,
    )
    .await;
    let queues = redis_queues(prefix, "e2e-postgres", shared.clone());
    end_to_end("postgres store + redis streams", shared, queues, n).await;

    store.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .expect("drop schema");
}

fn main() {
    let secs: u64 = env("REDIS_BENCH_SECS", 5);
    let n: usize = env("REDIS_BENCH_TASKS", 20_000);
    let which: String = env("REDIS_BENCH_DB", "all".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let prefix = Prefix(format!("bench-{}", Uuid::new_v4().simple()));
    runtime.block_on(async {
        connection(&prefix).ping().await.unwrap_or_else(|e| panic!("Redis at {} is unreachable: {e}", redis_url()));
        for (clients, batch) in [(1, 1), (1, 100), (CLIENTS, 100)] {
            let rate = cycle_rate(&prefix, &format!("cycle-{clients}-{batch}"), clients, batch, secs).await;
            println!("broker cycle XADD->XREADGROUP->XACK: {rate:.0} messages/s ({clients} clients, batch {batch})");
        }
        if which == "all" || which == "memory" {
            memory(&prefix, n).await;
        }
        if which == "all" || which == "postgres" {
            postgres(&prefix, n).await;
        }
    });
}
