//! Test databases: a fresh PostgreSQL schema or a temporary SQLite file per test, removed at the
//! end (also when the test fails), and builders for events and tasks.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use orchestrator_core::event::NewEvent;
use orchestrator_core::queue::StoreQueue;
use orchestrator_core::store::{BatchDelivery, BatchStore, NewDelivery};
use orchestrator_core::task::{NewTask, TaskSpec, TaskType};
use orchestrator_sqlx::{PgStore, PoolOptions, SqlStore, SqliteStore};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// The PostgreSQL server the tests use.
pub fn database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The database queue over a store, as the server runs it (the core's [`StoreQueue`]).
pub trait AsQueue {
    /// The queue over this store's task table.
    fn queue(&self) -> StoreQueue<SqlStore>;
}

impl AsQueue for SqlStore {
    fn queue(&self) -> StoreQueue<SqlStore> {
        StoreQueue::new(Arc::new(self.clone()))
    }
}

/// `batch` with each delivery prepared by `store`, as the group committer hands it over.
pub fn prepared<S: BatchStore>(
    store: &S,
    batch: Vec<(NewEvent, Vec<NewTask>)>,
) -> Vec<BatchDelivery<S::Prepared>> {
    batch
        .into_iter()
        .map(|(event, tasks)| {
            let prepared = store.prepare(&event);
            (NewDelivery::new(event, tasks), prepared)
        })
        .collect()
}

/// A store on a database that is removed when this is dropped.
pub struct TestDb {
    /// The store under test (dropped before the guard removes its database).
    pub store: SqlStore,
    _guard: Guard,
}

/// Removes a test database on drop, also when the test panicked.
enum Guard {
    Schema(String),
    Dir(#[allow(dead_code)] tempfile::TempDir),
}

async fn admin() -> PgConnection {
    let url = database_url();
    match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(&url)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(err)) => panic!("{}", unreachable_message(&url, &err.to_string())),
        Err(_) => panic!("{}", unreachable_message(&url, "connect timed out")),
    }
}

fn unreachable_message(url: &str, err: &str) -> String {
    let ci = if std::env::var_os("CI").is_some() {
        " (CI is set: a real PostgreSQL is required)"
    } else {
        ""
    };
    format!("PostgreSQL is unreachable at {url}: {err}{ci}")
}

/// Pool settings for tests: few connections, tests run in parallel.
pub fn test_options(max_connections: u32) -> PoolOptions {
    PoolOptions {
        max_connections,
        idle_timeout: Some(Duration::from_secs(5)),
        ..PoolOptions::default()
    }
}

impl TestDb {
    /// A fresh schema `wo_test_<random>` on the test server.
    pub async fn postgres(max_connections: u32) -> Self {
        let schema = format!("wo_test_{:016x}", rand::random::<u64>());
        let mut conn = admin().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .expect("create schema");
        conn.close().await.ok();
        // From here on the guard drops the schema, even if migrating fails.
        let guard = Guard::Schema(schema.clone());
        let connect: PgConnectOptions = database_url().parse().expect("url");
        let connect = connect.options([("search_path", schema.as_str())]);
        let store = PgStore::connect_with(connect, &test_options(max_connections))
            .await
            .expect("migrate");
        TestDb {
            store: SqlStore::Postgres(store),
            _guard: guard,
        }
    }

    /// A fresh SQLite file in a temporary directory.
    pub async fn sqlite(max_connections: u32) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let store = SqliteStore::connect(&url, &test_options(max_connections))
            .await
            .expect("open sqlite");
        TestDb {
            store: SqlStore::Sqlite(store),
            _guard: Guard::Dir(dir),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let Guard::Schema(schema) = self else { return };
        let schema = schema.clone();
        // Drop is synchronous: run the cleanup on a thread with its own runtime and wait for it.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut conn = admin().await;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .execute(&mut conn)
                .await
            })
        })
        .join();
        if !matches!(done, Ok(Ok(_))) {
            eprintln!("could not drop test schema");
        }
    }
}

/// A fixed instant tests count from.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

/// `t0 + secs`.
pub fn at(secs: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(secs)
}

/// A delivery of `event_type` received at `received`.
pub fn event(delivery: &str, event_type: &str, received: DateTime<Utc>) -> NewEvent {
    NewEvent {
        delivery_id: delivery.to_owned(),
        event_type: event_type.to_owned(),
        action: Some("opened".to_owned()),
        source: "github".to_owned(),
        repository: Some("octo/repo".to_owned()),
        installation_id: Some(42),
        payload: Bytes::from_static(br#"{"action": "opened",  "number":1, "z": [1.50, "\u00e9"]}"#),
        headers: vec![
            ("x-github-event".to_owned(), event_type.to_owned()),
            ("x-github-delivery".to_owned(), delivery.to_owned()),
        ],
        received_at: received,
        parse_error: None,
    }
}

/// A task of `task_type` with `priority`, due at `run_at`.
pub fn task(task_type: &str, priority: i32, run_at: DateTime<Utc>) -> NewTask {
    let mut spec = TaskSpec::new(TaskType::new(task_type).expect("task type"));
    spec.priority = priority;
    spec.repository = Some("octo/repo".to_owned());
    spec.pr_number = Some(7);
    spec.branch = Some("main".to_owned());
    spec.commit_sha = Some("abc123".to_owned());
    spec.input_data = serde_json::json!({"number": 7});
    let mut task = NewTask::new(spec, 2, run_at);
    task.run_at = run_at;
    task
}
