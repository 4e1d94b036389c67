//! Figures (stats, queue depth) and retention on PostgreSQL.

use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::{CleanupReport, QueueDepth, RetentionPolicy, Stats};

use super::PgStore;
use crate::error::store_error;
use crate::plan::cutoff;
use crate::stats::{assemble, count as n};

const TOTALS: &str = "SELECT (SELECT count(*) FROM webhook_events), \
    (SELECT count(*) FROM workflow_tasks), (SELECT count(*) FROM task_executions), \
    (SELECT avg(duration_ms)::float8 FROM task_executions WHERE duration_ms IS NOT NULL), \
    (SELECT count(*) FROM webhook_events WHERE created_at >= $1), \
    (SELECT count(*) FROM webhook_events WHERE created_at >= $1 \
     AND error_message IS NOT NULL), \
    (SELECT count(*) FROM workflow_tasks WHERE created_at >= $1), \
    (SELECT count(*) FROM workflow_tasks WHERE created_at >= $1 \
     AND status = 'failed')";

const BY_STATUS: &str = "SELECT status, count(*) FROM workflow_tasks GROUP BY status";
const BY_TYPE: &str = "SELECT event_type, count(*) FROM webhook_events GROUP BY event_type";

const DEPTH: &str = "SELECT \
    count(*) FILTER (WHERE status IN ('pending', 'retrying') AND run_at <= $1), \
    count(*) FILTER (WHERE status IN ('pending', 'retrying') AND run_at > $1), \
    count(*) FILTER (WHERE status = 'running') \
    FROM workflow_tasks WHERE status IN ('pending', 'retrying', 'running')";

/// Old processed events with all their (terminal) tasks, and old terminal tasks; their
/// executions first. `open_tasks = 0` guarantees no task of a removed event can still run.
/// Reporting records as old whose task is removed now or was before go too (the statement
/// sees the tasks as they were before it, hence `dt`).
const CLEANUP: &str = "WITH ev AS (SELECT id FROM webhook_events WHERE processed AND open_tasks = 0 \
    AND COALESCE(processing_completed_at, created_at) < $1), \
    dt AS (DELETE FROM workflow_tasks WHERE status IN ('completed', 'failed', 'cancelled') \
    AND (webhook_event_id IN (SELECT id FROM ev) OR COALESCE(completed_at, updated_at) < $2) \
    RETURNING task_id), \
    dx AS (DELETE FROM task_executions WHERE task_id IN (SELECT task_id FROM dt) RETURNING 1), \
    de AS (DELETE FROM webhook_events WHERE id IN (SELECT id FROM ev) RETURNING 1), \
    dr AS (DELETE FROM github_reports r WHERE r.updated_at < $2 AND (r.task_id IS NULL \
    OR r.task_id IN (SELECT task_id FROM dt) \
    OR NOT EXISTS (SELECT 1 FROM workflow_tasks t WHERE t.task_id = r.task_id)) RETURNING 1) \
    SELECT (SELECT count(*) FROM de), (SELECT count(*) FROM dt), (SELECT count(*) FROM dx), \
    (SELECT count(*) FROM dr)";

impl PgStore {
    pub(super) async fn figures(&self, now: DateTime<Utc>) -> Result<Stats, StoreError> {
        let since = now - chrono::Duration::hours(24);
        let row = sqlx::query(TOTALS)
            .bind(since)
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        let statuses = sqlx::query(BY_STATUS)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        let types = sqlx::query(BY_TYPE)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        assemble(&row, &statuses, &types)
    }

    pub(super) async fn count_depth(&self, now: DateTime<Utc>) -> Result<QueueDepth, StoreError> {
        let row = sqlx::query(DEPTH)
            .bind(now)
            .fetch_one(&self.pool)
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
        let row = sqlx::query(CLEANUP)
            .bind(cutoff(now, policy.processed_events))
            .bind(cutoff(now, policy.finished_tasks))
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(CleanupReport {
            events_deleted: n(&row, 0)?,
            tasks_deleted: n(&row, 1)?,
            executions_deleted: n(&row, 2)?,
            reports_deleted: n(&row, 3)?,
        })
    }
}
