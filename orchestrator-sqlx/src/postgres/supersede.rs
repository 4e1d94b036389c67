//! Supersede and close on PostgreSQL (see `crate::supersede` for the statements and the
//! locking).

use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::cancel::CancelOutcome;
use orchestrator_core::store::supersede::{
    Action, KnownHead, OpenTask, SupersedeOutcome, SupersedeRequest, is_late, plan, plan_closed,
    superseded_message,
};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::PgStore;
use crate::error::store_error;
use crate::plan::{parse_status, parse_task_type};
use crate::supersede::{HEAD_INIT, HEAD_SET, MARK, NEWEST_OF, OPEN};

const HEAD_LOCKED: &str = "SELECT head_sha, head_at FROM pull_request_heads \
    WHERE repository = $1 AND pr_number = $2 FOR UPDATE";

const LOCK_OPEN: &str = "SELECT id FROM workflow_tasks WHERE repository = $1 AND pr_number = $2 \
    AND status IN ('pending', 'retrying', 'running') ORDER BY id FOR UPDATE";

fn open_task(row: &PgRow) -> Result<OpenTask, StoreError> {
    Ok(OpenTask {
        task_id: row.try_get("task_id").map_err(store_error)?,
        task_type: parse_task_type(row.try_get("task_type").map_err(store_error)?)?,
        status: parse_status(&row.try_get::<String, _>("status").map_err(store_error)?)?,
        commit_sha: row.try_get("commit_sha").map_err(store_error)?,
        has_parent: row.try_get("has_parent").map_err(store_error)?,
        has_run: row.try_get("has_run").map_err(store_error)?,
    })
}

/// Locks the open tasks of the pull request, then reads them.
async fn open_tasks(
    tx: &mut Transaction<'_, Postgres>,
    repository: &str,
    pr_number: i64,
) -> Result<Vec<OpenTask>, StoreError> {
    sqlx::query(LOCK_OPEN)
        .bind(repository)
        .bind(pr_number)
        .fetch_all(&mut **tx)
        .await
        .map_err(store_error)?;
    let rows = sqlx::query(OPEN)
        .bind(repository)
        .bind(pr_number)
        .fetch_all(&mut **tx)
        .await
        .map_err(store_error)?;
    rows.iter().map(open_task).collect()
}

impl PgStore {
    /// One supersede in one transaction.
    pub(super) async fn supersede_tx(
        &self,
        request: &SupersedeRequest,
        now: DateTime<Utc>,
    ) -> Result<SupersedeOutcome, StoreError> {
        let head = &request.head;
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let inserted = sqlx::query(HEAD_INIT)
            .bind(&head.repository)
            .bind(head.pr_number)
            .bind(&head.head_sha)
            .bind(head.head_at)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?
            .rows_affected()
            == 1;
        let known = if inserted {
            None
        } else {
            let row = sqlx::query(HEAD_LOCKED)
                .bind(&head.repository)
                .bind(head.pr_number)
                .fetch_one(&mut *tx)
                .await
                .map_err(store_error)?;
            Some(KnownHead {
                head_sha: row.try_get("head_sha").map_err(store_error)?,
                head_at: row.try_get("head_at").map_err(store_error)?,
            })
        };
        let mut outcome = SupersedeOutcome::default();
        if let Some(known) = known.as_ref().filter(|k| is_late(Some(k), head)) {
            outcome.late = true;
            for (new_id, kind) in &request.new_tasks {
                let by: Option<Uuid> = sqlx::query_scalar(NEWEST_OF)
                    .bind(&head.repository)
                    .bind(head.pr_number)
                    .bind(kind.as_str())
                    .bind(&known.head_sha)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(store_error)?;
                let Some(by) = by else { continue };
                let message = superseded_message(by, &known.head_sha);
                if let CancelOutcome::Cancelled(_) =
                    Self::cancel_in(&mut tx, *new_id, &message, Some(by), now).await?
                {
                    outcome.cancelled.push(*new_id);
                }
            }
            tx.commit().await.map_err(store_error)?;
            return Ok(outcome);
        }
        if let Some(known) = &known {
            let head_at = if known.head_sha == head.head_sha {
                known.head_at.max(head.head_at)
            } else {
                head.head_at
            };
            sqlx::query(HEAD_SET)
                .bind(&head.repository)
                .bind(head.pr_number)
                .bind(&head.head_sha)
                .bind(head_at)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        let open = open_tasks(&mut tx, &head.repository, head.pr_number).await?;
        for (task_id, action) in plan(request, &open) {
            match action {
                Action::Cancel { by } => {
                    let message = superseded_message(by, &head.head_sha);
                    if let CancelOutcome::Cancelled(_) =
                        Self::cancel_in(&mut tx, task_id, &message, Some(by), now).await?
                    {
                        outcome.cancelled.push(task_id);
                    }
                }
                Action::Mark { by } => {
                    sqlx::query(MARK)
                        .bind(task_id)
                        .bind(by)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(store_error)?;
                    outcome.marked.push(task_id);
                }
            }
        }
        tx.commit().await.map_err(store_error)?;
        Ok(outcome)
    }

    /// Cancels a closed pull request's open work in one transaction.
    pub(super) async fn close_tx(
        &self,
        repository: &str,
        pr_number: i64,
        message: &str,
        running: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let open = open_tasks(&mut tx, repository, pr_number).await?;
        let mut cancelled = Vec::new();
        for task_id in plan_closed(&open, running) {
            if let CancelOutcome::Cancelled(_) =
                Self::cancel_in(&mut tx, task_id, message, None, now).await?
            {
                cancelled.push(task_id);
            }
        }
        tx.commit().await.map_err(store_error)?;
        Ok(cancelled)
    }
}
