//! [`CancelStore`] on PostgreSQL: one transaction that locks the task row (`FOR UPDATE`), so a
//! claim (`FOR UPDATE SKIP LOCKED`), a finish and an agent-run admission (which locks the row
//! too) of the same task come strictly before or after it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::cancel::{CancelOutcome, CancelStore};
use orchestrator_core::store::supersede::{SupersedeOutcome, SupersedeRequest};
use orchestrator_core::task::Task;
use sqlx::Row;
use sqlx::postgres::PgConnection;
use uuid::Uuid;

use super::PgStore;
use super::rows::{task, task_columns};
use crate::cancel::SETTLE;
use crate::error::store_error;
use crate::plan::parse_status;

const LOCK: &str = "SELECT status FROM workflow_tasks WHERE task_id = $1 FOR UPDATE";

const CANCEL: &str = concat!(
    "UPDATE workflow_tasks SET status = 'cancelled', completed_at = $2, error_message = $3, \
     lease_owner = NULL, lease_expires_at = NULL, superseded_by = COALESCE($4, superseded_by), \
     updated_at = $2 WHERE task_id = $1 AND status IN ('pending', 'retrying', 'running') \
     RETURNING ",
    task_columns!()
);

const CLOSE_EXECUTIONS: &str = "UPDATE task_executions SET status = 'cancelled', completed_at = $2, \
    duration_ms = GREATEST(0, floor(extract(epoch FROM ($2 - started_at)) * 1000))::bigint, \
    error_message = $3 WHERE task_id = $1 AND status = 'running'";

impl PgStore {
    /// Cancels `task_id` inside `tx` (its row is locked first). `superseded_by` is recorded
    /// when given.
    pub(super) async fn cancel_in(
        tx: &mut PgConnection,
        task_id: Uuid,
        message: &str,
        superseded_by: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<CancelOutcome, StoreError> {
        let Some(row) = sqlx::query(LOCK)
            .bind(task_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?
        else {
            return Ok(CancelOutcome::NotFound);
        };
        let status = parse_status(&row.try_get::<String, _>(0).map_err(store_error)?)?;
        if status.is_terminal() {
            return Ok(CancelOutcome::Terminal(status));
        }
        let row = sqlx::query(CANCEL)
            .bind(task_id)
            .bind(now)
            .bind(message)
            .bind(superseded_by)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
        let cancelled: Task = task(&row)?;
        sqlx::query(CLOSE_EXECUTIONS)
            .bind(task_id)
            .bind(now)
            .bind(message)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        if let Some(event_id) = cancelled.webhook_event_id {
            sqlx::query(SETTLE)
                .bind(event_id)
                .bind(-1i32)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        Ok(CancelOutcome::Cancelled(Box::new(cancelled)))
    }
}

#[async_trait]
impl CancelStore for PgStore {
    async fn cancel_task(
        &self,
        task_id: Uuid,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<CancelOutcome, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let outcome = Self::cancel_in(&mut tx, task_id, message, None, now).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(outcome)
    }

    async fn supersede(
        &self,
        request: &SupersedeRequest,
        now: DateTime<Utc>,
    ) -> Result<SupersedeOutcome, StoreError> {
        self.supersede_tx(request, now).await
    }

    async fn cancel_closed(
        &self,
        repository: &str,
        pr_number: i64,
        message: &str,
        running: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError> {
        self.close_tx(repository, pr_number, message, running, now)
            .await
    }
}
