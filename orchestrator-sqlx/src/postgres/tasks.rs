//! [`TaskStore`] on PostgreSQL: task list and detail, manual retry, statistics, retention, ping.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::{
    CleanupReport, Page, RetentionPolicy, RetryOutcome, Stats, TaskFilter, TaskStore,
};
use orchestrator_core::task::TaskDetail;
use sqlx::Row;
use uuid::Uuid;

use super::PgStore;
use super::rows::{execution, task, task_columns};
use crate::error::store_error;
use crate::plan::parse_status;

/// The task list without its conditions (see `crate::list`).
const LIST: &str = concat!("SELECT ", task_columns!(), " FROM workflow_tasks");

const GET: &str = concat!(
    "SELECT ",
    task_columns!(),
    " FROM workflow_tasks WHERE task_id = $1"
);

const EXECUTIONS: &str = "SELECT id, execution_id, task_id, attempt, worker_id, status, started_at, \
    completed_at, duration_ms, error_message FROM task_executions WHERE task_id = $1 ORDER BY id";

const RETRY: &str = "WITH t AS (UPDATE workflow_tasks SET status = 'pending', run_at = $2, \
    retry_count = 0, completed_at = NULL, error_message = NULL, lease_owner = NULL, \
    lease_expires_at = NULL, updated_at = $2 \
    WHERE task_id = $1 AND status IN ('failed', 'cancelled') RETURNING *), \
    e AS (UPDATE webhook_events ev SET open_tasks = ev.open_tasks + 1, processed = FALSE, \
    processing_completed_at = NULL, updated_at = $2 FROM t WHERE ev.id = t.webhook_event_id), \
    r AS (UPDATE agent_runs a SET state = 'released', updated_at = $2 FROM t \
    WHERE a.task_id = t.task_id AND a.state = 'unresolved') \
    SELECT * FROM t";

const STATUS: &str = "SELECT status FROM workflow_tasks WHERE task_id = $1";

#[async_trait]
impl TaskStore for PgStore {
    async fn list_tasks(
        &self,
        filter: &TaskFilter,
        page: Page,
    ) -> Result<Vec<orchestrator_core::task::Task>, StoreError> {
        let rows = crate::list::query(LIST, crate::list::tasks(filter), page)
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter().map(task).collect()
    }

    async fn get_task(&self, task_id: Uuid) -> Result<Option<TaskDetail>, StoreError> {
        let Some(row) = sqlx::query(GET)
            .bind(task_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(EXECUTIONS)
            .bind(task_id)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        let executions = rows.iter().map(execution).collect::<Result<_, _>>()?;
        Ok(Some(TaskDetail {
            task: task(&row)?,
            executions,
        }))
    }

    async fn retry_task(
        &self,
        task_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<RetryOutcome, StoreError> {
        let row = sqlx::query(RETRY)
            .bind(task_id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        if let Some(row) = row {
            return Ok(RetryOutcome::Scheduled(Box::new(task(&row)?)));
        }
        let row = sqlx::query(STATUS)
            .bind(task_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        match row {
            None => Ok(RetryOutcome::NotFound),
            Some(row) => {
                let status: String = row.try_get(0).map_err(store_error)?;
                Ok(RetryOutcome::NotRetryable(parse_status(&status)?))
            }
        }
    }

    async fn stats(&self, now: DateTime<Utc>) -> Result<Stats, StoreError> {
        self.figures(now).await
    }

    async fn cleanup(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
    ) -> Result<CleanupReport, StoreError> {
        self.remove_old(policy, now).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
