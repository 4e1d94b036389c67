//! Redis Streams queue throughput (needs a Redis: `TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`; keys under a fresh `bench-*` prefix, deleted at the end).
//!
//! - `redis_queue_cycle`: the broker alone, `XADD` (pipelined) -> `XREADGROUP` -> `XACK`+`XDEL`
//!   of a batch of task ids, by one client and by eight clients sharing the consumer group.
//! - `redis_queue_end_to_end`: no-op tasks with their state changes: ingest one event with 100
//!   tasks, publish, claim, finish (completed) — `RedisQueue` over a store, beside the store's
//!   own queue (rows are the queue) for comparison.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use orchestrator_core::clock::{Clock, SystemClock};
use orchestrator_core::event::NewEvent;
use orchestrator_core::memory::MemoryStore;
use orchestrator_core::queue::{Finish, TaskQueue, TaskRef};
use orchestrator_core::store::{EventStore, IngestOutcome};
use orchestrator_core::task::{NewTask, TaskSpec, TaskType};
use orchestrator_redis::{QueueConfig, RedisConfig, RedisConnection, RedisQueue, TaskStream};
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(60);

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Deletes the bench's keys when dropped.
struct Prefix(String);

impl Drop for Prefix {
    fn drop(&mut self) {
        let Ok(mut conn) = redis::Client::open(redis_url().as_str()).and_then(|c| c.get_connection()) else {
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
    let config = RedisConfig { prefix: prefix.0.clone(), ..RedisConfig::new(redis_url()) };
    RedisConnection::new(config).unwrap()
}

fn queue_config(name: &str) -> QueueConfig {
    QueueConfig { name: name.to_owned(), block: Duration::from_millis(100), ..QueueConfig::default() }
}

/// One broker cycle of `batch` messages for `consumer`: publish, read them all, acknowledge.
async fn raw_cycle(stream: &TaskStream, consumer: &str, batch: usize) {
    let now = Utc::now();
    let refs: Vec<TaskRef> = (0..batch).map(|_| TaskRef { task_id: Uuid::now_v7(), run_at: now }).collect();
    stream.apply(now, &[], &refs).await.unwrap();
    let mut acks = Vec::with_capacity(batch);
    while acks.len() < batch {
        let got = stream.read(consumer, batch - acks.len()).await.unwrap();
        acks.extend(got.into_iter().map(|d| d.entry_id));
    }
    stream.apply(now, &acks, &[]).await.unwrap();
}

fn cycle(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let prefix = Prefix(format!("bench-{}", Uuid::new_v4().simple()));
    let conn = connection(&prefix);
    rt.block_on(conn.ping()).unwrap_or_else(|e| panic!("Redis at {} is unreachable: {e}", redis_url()));
    let stream = Arc::new(TaskStream::new(conn.clone(), queue_config("cycle")).unwrap());

    let mut group = c.benchmark_group("redis_queue_cycle");
    for batch in [1usize, 100] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::new("one_client", batch), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        raw_cycle(&stream, "c0", batch).await;
                    }
                    start.elapsed()
                })
            });
        });
    }

    // Eight processes: each its own connection, one consumer group.
    let streams: Vec<Arc<TaskStream>> =
        (0..8).map(|_| Arc::new(TaskStream::new(connection(&prefix), queue_config("cycle8")).unwrap())).collect();
    group.throughput(Throughput::Elements(8 * 100));
    group.bench_function(BenchmarkId::new("eight_clients", 100), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                let clients = streams.iter().enumerate().map(|(i, s)| {
                    let s = s.clone();
                    tokio::spawn(async move {
                        for _ in 0..iters {
                            raw_cycle(&s, &format!("c{i}"), 100).await;
                        }
                    })
                });
                for client in futures::future::join_all(clients).await {
                    client.unwrap();
                }
                start.elapsed()
            })
        });
    });
    group.finish();
}

/// Commits one event with `n` tasks due now; their refs.
async fn ingest(store: &dyn EventStore, n: usize) -> Vec<TaskRef> {
    let now = Utc::now();
    let tasks: Vec<NewTask> = (0..n).map(|_| NewTask::new(TaskSpec::new(TaskType::PUSH_ANALYSIS), 3, now)).collect();
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
    };
    match store.ingest(event, tasks).await.unwrap() {
        IngestOutcome::Accepted { task_ids, .. } => task_ids.into_iter().map(|task_id| TaskRef { task_id, run_at: now }).collect(),
        IngestOutcome::Duplicate { .. } => unreachable!("fresh delivery id"),
    }
}

/// Ingest `n` no-op tasks, publish, claim them all, complete them.
async fn end_to_end(store: &dyn EventStore, queue: &dyn TaskQueue, n: usize) {
    let refs = ingest(store, n).await;
    queue.publish(&refs).await.unwrap();
    let mut done = 0;
    while done < n {
        let claims = queue.claim("w", n - done, LEASE, Utc::now()).await.unwrap();
        for claim in &claims {
            let finish = Finish::Completed { output: serde_json::json!({}), followups: Vec::new() };
            queue.finish(claim, finish, Utc::now()).await.unwrap();
        }
        done += claims.len();
    }
}

fn end_to_end_memory(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let prefix = Prefix(format!("bench-{}", Uuid::new_v4().simple()));
    let conn = connection(&prefix);
    const N: usize = 100;
    let mut group = c.benchmark_group("redis_queue_end_to_end");
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function(BenchmarkId::new("memory_store+redis_streams", N), |b| {
        b.iter_custom(|iters| {
            // A fresh store per sample, so its size does not drift across samples.
            let store = Arc::new(MemoryStore::new());
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            let queue = RedisQueue::new(conn.clone(), queue_config("e2e"), store.clone(), clock).unwrap();
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    end_to_end(store.as_ref(), &queue, N).await;
                }
                start.elapsed()
            })
        });
    });
    group.bench_function(BenchmarkId::new("memory_queue", N), |b| {
        b.iter_custom(|iters| {
            let store = Arc::new(MemoryStore::new());
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    end_to_end(store.as_ref(), store.as_ref(), N).await;
                }
                start.elapsed()
            })
        });
    });
    group.finish();
}

criterion_group!(benches, cycle, end_to_end_memory);
criterion_main!(benches);
