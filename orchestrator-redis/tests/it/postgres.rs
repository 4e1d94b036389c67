//! The queue over the PostgreSQL store: the database's conditional update is what keeps a task
//! from running twice, with real concurrent transactions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orchestrator_core::clock::{Clock, ManualClock};
use orchestrator_core::queue::TaskQueue;
use orchestrator_core::store::{Finish, TaskStore};
use orchestrator_core::task::TaskStatus;
use orchestrator_redis::{QueueConfig, RedisQueue};
use orchestrator_sqlx::{PgStore, PoolOptions, SqlStore};
use serde_json::json;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use uuid::Uuid;

use crate::support::{TestRedis, commit_tasks, fast_config};

fn database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

async fn admin() -> PgConnection {
    let url = database_url();
    match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(&url)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(err)) => panic!("PostgreSQL at {url} is unreachable: {err}"),
        Err(_) => panic!("PostgreSQL at {url} is unreachable: connect timed out"),
    }
}

/// A scratch schema, dropped on drop (also after a failure).
struct Schema(String);

impl Schema {
    async fn create() -> (Self, SqlStore) {
        let name = format!("wo_redis_test_{}", Uuid::new_v4().simple());
        let mut conn = admin().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let schema = Schema(name);
        let connect: PgConnectOptions = database_url().parse().unwrap();
        let options = PoolOptions {
            max_connections: 12,
            ..PoolOptions::default()
        };
        let store = PgStore::connect_with(
            connect.options([("search_path", schema.0.as_str())]),
            &options,
        )
        .await
        .unwrap();
        (schema, SqlStore::from(store))
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let name = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut conn = admin().await;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {name} CASCADE"
                )))
                .execute(&mut conn)
                .await
            })
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_consumers_over_postgres_run_each_task_once_despite_duplicates() {
    const TASKS: usize = 1_000;
    let redis = TestRedis::new();
    let (_schema, store) = Schema::create().await;
    let store = Arc::new(store);
    let clock = Arc::new(ManualClock::default());
    let config = QueueConfig {
        visibility_timeout: Duration::from_secs(30),
        ..fast_config()
    };
    let queue = |store: &Arc<SqlStore>| {
        let clock = clock.clone() as Arc<dyn Clock>;
        Arc::new(
            RedisQueue::new(
                redis.connection(),
                config.clone(),
                store.clone(),
                store.clone(),
                clock,
            )
            .unwrap(),
        )
    };
    let publisher = queue(&store);
    let refs = commit_tasks(store.as_ref(), TASKS, clock.now()).await;
    publisher.publish(&refs).await.unwrap();
    publisher.publish(&refs[..TASKS / 2]).await.unwrap(); // duplicates

    let runs: Arc<Mutex<HashMap<Uuid, u32>>> = Arc::default();
    let done = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut consumers = Vec::new();
    for i in 0..8 {
        let (q, runs, done, now) = (queue(&store), runs.clone(), done.clone(), clock.now());
        consumers.push(tokio::spawn(async move {
            while done.load(Ordering::SeqCst) < TASKS && Instant::now() < deadline {
                for claim in q
                    .claim(&format!("pg-{i}"), 16, Duration::from_secs(60), now)
                    .await
                    .unwrap()
                {
                    *runs.lock().unwrap().entry(claim.task.task_id).or_default() += 1;
                    let finish = Finish::Completed {
                        output: json!({}),
                        followups: Vec::new(),
                    };
                    q.finish(&claim, finish, now).await.unwrap();
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for c in consumers {
        c.await.unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), TASKS);
    {
        let runs = runs.lock().unwrap();
        assert_eq!(runs.len(), TASKS);
        assert!(runs.values().all(|n| *n == 1), "a task ran twice");
    }
    for r in refs.iter().step_by(50) {
        let detail = store.get_task(r.task_id).await.unwrap().unwrap();
        assert_eq!(detail.task.status, TaskStatus::Completed);
        assert_eq!(detail.executions.len(), 1);
    }
}

#[tokio::test]
async fn the_sweeper_finds_tasks_committed_to_postgres_but_never_published() {
    let redis = TestRedis::new();
    let (_schema, store) = Schema::create().await;
    let store = Arc::new(store);
    let clock = Arc::new(ManualClock::default());
    let queue = RedisQueue::new(
        redis.connection(),
        fast_config(),
        store.clone(),
        store.clone(),
        clock.clone() as Arc<dyn Clock>,
    )
    .unwrap();
    let lost = commit_tasks(store.as_ref(), 5, clock.now()).await;
    assert!(
        queue
            .claim("w", 10, Duration::from_secs(60), clock.now())
            .await
            .unwrap()
            .is_empty()
    );
    clock.advance(Duration::from_secs(301));
    assert_eq!(queue.sweeper().sweep_once(clock.now()).await.unwrap(), 5);
    let claims = queue
        .claim("w", 10, Duration::from_secs(60), clock.now())
        .await
        .unwrap();
    let mut got: Vec<_> = claims.iter().map(|c| c.task.task_id).collect();
    let mut want: Vec<_> = lost.iter().map(|r| r.task_id).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}
