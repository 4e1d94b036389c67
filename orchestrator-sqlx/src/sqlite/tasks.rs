//! [`TaskStore`] on SQLite: task list and detail, manual retry, statistics, retention, ping.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::{
    CleanupReport, Page, RetentionPolicy, RetryOutcome, Stats, TaskFilter, TaskStore,
};
use orchestrator_core::task::{Task, TaskDetail};
use sqlx::Row;
use uuid::Uuid;

use super::SqliteStore;
use super::rows::{execution, task, task_columns, us};
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

const RETRY: &str = concat!(
    "UPDATE workflow_tasks SET status = 'pending', run_at = $2, retry_count = 0, completed_at = NULL, \
     error_message = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = $2 \
     WHERE task_id = $1 AND status IN ('failed', 'cancelled') RETURNING ",
    task_columns!()
);

const REOPEN_EVENT: &str = "UPDATE webhook_events SET open_tasks = open_tasks + 1, processed = 0, \
    processing_completed_at = NULL, updated_at = $2 WHERE id = $1";

const STATUS: &str = "SELECT status FROM workflow_tasks WHERE task_id = $1";

/// The operator decided: the retried task's unresolved agent-run intents no longer block.
const RELEASE_INTENTS: &str = "UPDATE agent_runs SET state = 'released', updated_at = $2 \
    WHERE task_id = $1 AND state = 'unresolved'";

#[async_trait]
impl TaskStore for SqliteStore {
    async fn list_tasks(&self, filter: &TaskFilter, page: Page) -> Result<Vec<Task>, StoreError> {
        let rows = crate::list::query(LIST, crate::list::tasks(filter), page)
            .build()
            .fetch_all(&self.reader)
            .await
            .map_err(store_error)?;
        rows.iter().map(task).collect()
    }

    async fn get_task(&self, task_id: Uuid) -> Result<Option<TaskDetail>, StoreError> {
        let mut conn = self.reader.begin().await.map_err(store_error)?;
        let Some(row) = sqlx::query(GET)
            .bind(task_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(EXECUTIONS)
            .bind(task_id)
            .fetch_all(&mut *conn)
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
        let mut tx = self.write().await?;
        let row = sqlx::query(RETRY)
            .bind(task_id)
            .bind(us(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        let Some(row) = row else {
            let row = sqlx::query(STATUS)
                .bind(task_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(store_error)?;
            return match row {
                None => Ok(RetryOutcome::NotFound),
                Some(row) => {
                    let status: String = row.try_get(0).map_err(store_error)?;
                    Ok(RetryOutcome::NotRetryable(parse_status(&status)?))
                }
            };
        };
        let task = task(&row)?;
        sqlx::query(RELEASE_INTENTS)
            .bind(task_id)
            .bind(us(now))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        if let Some(event) = task.webhook_event_id {
            sqlx::query(REOPEN_EVENT)
                .bind(event)
                .bind(us(now))
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(RetryOutcome::Scheduled(Box::new(task)))
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
            .execute(&self.reader)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
