//! Database-specific checks: the claim query uses the partial index of runnable rows however
//! many finished rows the table holds, URL selection, and the durable queue-write mode.

use std::time::Duration;

use orchestrator_core::queue::TaskQueue;
use orchestrator_core::store::{AttemptStore, EventStore, Finish, TaskStore};
use orchestrator_sqlx::{PoolOptions, SqlStore};
use serde_json::json;
use sqlx::Row;

use crate::support::{AsQueue, TestDb, at, event, task};

const FINISHED_ROWS: i64 = 200_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_claim_uses_runnable_index_with_many_finished_rows() {
    let db = TestDb::postgres(2).await;
    let SqlStore::Postgres(pg) = &db.store else {
        unreachable!()
    };
    sqlx::query(
        "INSERT INTO workflow_tasks (task_id, task_type, status, config, input_data, max_retries, \
         run_at, completed_at, created_at, updated_at) SELECT gen_random_uuid(), 'push_analysis', \
         'completed', '{}', '{}', 3, $2, $2, $2, $2 FROM generate_series(1, $1)",
    )
    .bind(FINISHED_ROWS)
    .bind(at(0))
    .execute(pg.pool())
    .await
    .unwrap();
    sqlx::query("ANALYZE workflow_tasks")
        .execute(pg.pool())
        .await
        .unwrap();
    db.store
        .ingest(
            event("d-1", "push", at(0)),
            vec![task("push_analysis", 0, at(0))],
        )
        .await
        .unwrap();

    let plan: Vec<String> = sqlx::query(
        "EXPLAIN SELECT id FROM workflow_tasks WHERE status IN ('pending', 'retrying') \
         AND run_at <= $1 ORDER BY priority DESC, run_at, id LIMIT 16 FOR UPDATE SKIP LOCKED",
    )
    .bind(at(1))
    .fetch_all(pg.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>(0))
    .collect();
    assert!(
        plan.iter()
            .any(|l| l.contains("workflow_tasks_runnable_idx")),
        "plan: {plan:#?}"
    );

    let started = std::time::Instant::now();
    let claims = db
        .store
        .queue()
        .claim("w", 16, Duration::from_secs(30), at(1))
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "claim took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn sqlite_claim_uses_runnable_index() {
    let db = TestDb::sqlite(2).await;
    let SqlStore::Sqlite(lite) = &db.store else {
        unreachable!()
    };
    let plan: Vec<String> = sqlx::query(
        "EXPLAIN QUERY PLAN SELECT id FROM workflow_tasks INDEXED BY workflow_tasks_runnable_idx \
         WHERE status IN ('pending', 'retrying') AND run_at <= 1 ORDER BY priority DESC, run_at, id LIMIT 16",
    )
    .fetch_all(lite.reader())
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>(3))
    .collect();
    assert!(
        plan.iter()
            .any(|l| l.contains("workflow_tasks_runnable_idx")),
        "plan: {plan:#?}"
    );
    assert!(
        !plan.iter().any(|l| l.contains("TEMP B-TREE")),
        "no sort: {plan:#?}"
    );
}

#[tokio::test]
async fn connect_picks_database_by_url() {
    let err = SqlStore::connect("mysql://localhost/x", PoolOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, orchestrator_sqlx::Error::UnsupportedUrl));
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("pick.db").display());
    let store = SqlStore::connect(&url, PoolOptions::default())
        .await
        .unwrap();
    assert_eq!(store.database(), "sqlite");
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    assert!(dir.path().join("pick.db").exists(), "one database file");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_durable_queue_writes() {
    let db = TestDb::postgres(2).await;
    let SqlStore::Postgres(pg) = &db.store else {
        unreachable!()
    };
    let durable = orchestrator_sqlx::PgStore::from_pool(pg.pool().clone());
    let options = PoolOptions {
        durable_queue_writes: true,
        ..PoolOptions::default()
    };
    assert!(options.durable_queue_writes);
    durable
        .ingest(
            event("d-1", "push", at(0)),
            vec![task("push_analysis", 0, at(0))],
        )
        .await
        .unwrap();
    let claim = durable
        .claim_due("w", 1, at(31), at(1))
        .await
        .unwrap()
        .remove(0);
    durable
        .finish_attempt(
            &claim,
            Finish::Completed {
                output: json!({}),
                followups: vec![],
            },
            at(2),
        )
        .await
        .unwrap();
    let row = sqlx::query("SHOW synchronous_commit")
        .fetch_one(pg.pool())
        .await
        .unwrap();
    assert_eq!(
        row.get::<String, _>(0),
        "on",
        "the main pool commits durably"
    );
    let detail = durable.get_task(claim.task.task_id).await.unwrap().unwrap();
    assert_eq!(
        detail.task.status,
        orchestrator_core::task::TaskStatus::Completed
    );
}
