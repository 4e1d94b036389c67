//! Figures (stats, queue depth) and retention on SQLite.

use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::{CleanupReport, QueueDepth, RetentionPolicy, Stats};

use super::SqliteStore;
use super::rows::us;
use crate::error::store_error;
use crate::plan::cutoff;
use crate::stats::{assemble, count as n};

const TOTALS: &str = "SELECT (SELECT count(*) FROM webhook_events), \
    (SELECT count(*) FROM workflow_tasks), (SELECT count(*) FROM task_executions), \
    (SELECT CAST(avg(duration_ms) AS REAL) FROM task_executions WHERE duration_ms IS NOT NULL), \
    (SELECT count(*) FROM webhook_events WHERE created_at >= $1), \
    (SELECT count(*) FROM webhook_events WHERE created_at >= $1 \
     AND error_message IS NOT NULL), \
    (SELECT count(*) FROM workflow_tasks WHERE created_at >= $1), \
    (SELECT count(*) FROM workflow_tasks WHERE created_at >= $1 \
     AND status = 'failed')";

const BY_STATUS: &str = "SELECT status, count(*) FROM workflow_tasks GROUP BY status";
const BY_TYPE: &str = "SELECT event_type, count(*) FROM webhook_events GROUP BY event_type";

const DEPTH: &str = "SELECT \
    COALESCE(SUM(CASE WHEN status IN ('pending', 'retrying') AND run_at <= $1 THEN 1 ELSE 0 END), 0), \
    COALESCE(SUM(CASE WHEN status IN ('pending', 'retrying') AND run_at > $1 THEN 1 ELSE 0 END), 0), \
    COALESCE(SUM(CASE WHEN status = 'running' THEN 1 ELSE 0 END), 0) \
    FROM workflow_tasks WHERE status IN ('pending', 'retrying', 'running')";

/// Old processed events whose tasks are all terminal (`open_tasks = 0`).
macro_rules! old_events {
    () => {
        "SELECT id FROM webhook_events WHERE processed = 1 AND open_tasks = 0 \
         AND COALESCE(processing_completed_at, created_at) < $1"
    };
}

/// Terminal tasks of old events, and old terminal tasks.
macro_rules! old_tasks {
    () => {
        concat!(
            "SELECT task_id FROM workflow_tasks WHERE status IN ('completed', 'failed', 'cancelled') \
             AND (webhook_event_id IN (",
            old_events!(),
            ") OR COALESCE(completed_at, updated_at) < $2)"
        )
    };
}

const DELETE_EXECUTIONS: &str = concat!(
    "DELETE FROM task_executions WHERE task_id IN (",
    old_tasks!(),
    ")"
);
const DELETE_TASKS: &str = concat!(
    "DELETE FROM workflow_tasks WHERE task_id IN (",
    old_tasks!(),
    ")"
);
const DELETE_EVENTS: &str = concat!(
    "DELETE FROM webhook_events WHERE id IN (",
    old_events!(),
    ")"
);

/// Reporting records older than the finished-task cutoff whose task is gone (run after
/// [`DELETE_TASKS`], in the same transaction).
const DELETE_REPORTS: &str = "DELETE FROM github_reports WHERE updated_at < $1 \
    AND (task_id IS NULL OR NOT EXISTS \
    (SELECT 1 FROM workflow_tasks t WHERE t.task_id = github_reports.task_id))";

impl SqliteStore {
    pub(super) async fn figures(&self, now: DateTime<Utc>) -> Result<Stats, StoreError> {
        let since = now - chrono::Duration::hours(24);
        let mut conn = self.reader.begin().await.map_err(store_error)?;
        let row = sqlx::query(TOTALS)
            .bind(us(since))
            .bind(us(now))
            .fetch_one(&mut *conn)
            .await
            .map_err(store_error)?;
        let statuses = sqlx::query(BY_STATUS)
            .fetch_all(&mut *conn)
            .await
            .map_err(store_error)?;
        let types = sqlx::query(BY_TYPE)
            .fetch_all(&mut *conn)
            .await
            .map_err(store_error)?;
        assemble(&row, &statuses, &types)
    }

    pub(super) async fn count_depth(&self, now: DateTime<Utc>) -> Result<QueueDepth, StoreError> {
        let row = sqlx::query(DEPTH)
            .bind(us(now))
            .fetch_one(&self.reader)
            .await
            .map_err(store_error)?;
        Ok(QueueDepth {
            ready: n(&row, 0)?,
            scheduled: n(&row, 1)?,
            running: n(&row, 2)?,
            dead_letter: 0,
        })
    }

    pub(super) async fn remove_old(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
    ) -> Result<CleanupReport, StoreError> {
        let events_before = us(cutoff(now, policy.processed_events));
        let tasks_before = us(cutoff(now, policy.finished_tasks));
        let mut tx = self.write().await?;
        let mut run = async |sql: &'static str| -> Result<u64, StoreError> {
            let done = sqlx::query(sql)
                .bind(events_before)
                .bind(tasks_before)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
            Ok(done.rows_affected())
        };
        let executions_deleted = run(DELETE_EXECUTIONS).await?;
        let tasks_deleted = run(DELETE_TASKS).await?;
        let events_deleted = run(DELETE_EVENTS).await?;
        let reports_deleted = sqlx::query(DELETE_REPORTS)
            .bind(tasks_before)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?
            .rows_affected();
        tx.commit().await.map_err(store_error)?;
        Ok(CleanupReport {
            events_deleted,
            tasks_deleted,
            executions_deleted,
            reports_deleted,
        })
    }
}
