//! [`TaskStore`] on PostgreSQL: task list and detail, manual retry, agent runs, attempts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::{StoreError, StoreErrorKind};
use orchestrator_core::queue::{Claim, Finish};
use orchestrator_core::store::{
    CleanupReport, ExternalRun, FinishReport, Page, RetentionPolicy, RetryOutcome, Stats,
    TaskFilter, TaskStore,
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

const RECORD_RUN: &str = "UPDATE workflow_tasks SET codegen_task_id = $2, codegen_task_url = $3, \
    updated_at = $4 WHERE task_id = $1 \
    OR task_id = (SELECT parent_task_id FROM workflow_tasks WHERE task_id = $1) RETURNING task_id";

const STALE: &str = "SELECT task_id FROM workflow_tasks WHERE status IN ('pending', 'retrying') \
    AND run_at <= $2 AND updated_at < $1 ORDER BY updated_at, id LIMIT $3";

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

    async fn record_external_run(
        &self,
        task_id: Uuid,
        run: &ExternalRun,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let rows = sqlx::query(RECORD_RUN)
            .bind(task_id)
            .bind(&run.id)
            .bind(&run.url)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        if rows.is_empty() {
            return Err(StoreError::new(
                StoreErrorKind::Internal,
                format!("no task {task_id}"),
            ));
        }
        Ok(())
    }

    async fn start_attempt(
        &self,
        task_id: Uuid,
        worker: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Claim>, StoreError> {
        self.start(task_id, worker, lease_until, now).await
    }

    async fn finish_attempt(
        &self,
        claim: &Claim,
        finish: Finish,
        now: DateTime<Utc>,
    ) -> Result<FinishReport, StoreError> {
        self.finish_claim(claim, finish, now).await
    }

    async fn extend_lease(
        &self,
        claim: &Claim,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.extend(claim, lease_until).await
    }

    async fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError> {
        self.expire(now).await
    }

    async fn stale_runnable(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError> {
        let rows = sqlx::query(STALE)
            .bind(stale_before)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(store_error))
            .collect()
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
