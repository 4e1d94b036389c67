//! Supersede and close on SQLite (see `crate::supersede` for the statements): one
//! `BEGIN IMMEDIATE` transaction, so nothing interleaves with it.

use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::cancel::CancelOutcome;
use orchestrator_core::store::supersede::{
    Action, KnownHead, OpenTask, SupersedeOutcome, SupersedeRequest, is_late, plan, plan_closed,
    superseded_message,
};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::SqliteStore;
use super::rows::{get, time, us};
use crate::error::store_error;
use crate::plan::{parse_status, parse_task_type};
use crate::supersede::{HEAD, HEAD_INIT, HEAD_SET, MARK, NEWEST_OF, OPEN};

fn open_task(row: &SqliteRow) -> Result<OpenTask, StoreError> {
    Ok(OpenTask {
        task_id: get(row, "task_id")?,
        task_type: parse_task_type(get(row, "task_type")?)?,
        status: parse_status(&get::<String>(row, "status")?)?,
        commit_sha: get(row, "commit_sha")?,
        has_parent: get(row, "has_parent")?,
        has_run: get(row, "has_run")?,
    })
}

async fn open_tasks(
    conn: &mut SqliteConnection,
    repository: &str,
    pr_number: i64,
) -> Result<Vec<OpenTask>, StoreError> {
    let rows = sqlx::query(OPEN)
        .bind(repository)
        .bind(pr_number)
        .fetch_all(&mut *conn)
        .await
        .map_err(store_error)?;
    rows.iter().map(open_task).collect()
}

/// The newest known head, creating the row with `request`'s head when there is none (`None`).
async fn known_head(
    conn: &mut SqliteConnection,
    request: &SupersedeRequest,
    now: DateTime<Utc>,
) -> Result<Option<KnownHead>, StoreError> {
    let head = &request.head;
    let inserted = sqlx::query(HEAD_INIT)
        .bind(&head.repository)
        .bind(head.pr_number)
        .bind(&head.head_sha)
        .bind(us(head.head_at))
        .bind(us(now))
        .execute(&mut *conn)
        .await
        .map_err(store_error)?
        .rows_affected()
        == 1;
    if inserted {
        return Ok(None);
    }
    let row = sqlx::query(HEAD)
        .bind(&head.repository)
        .bind(head.pr_number)
        .fetch_one(&mut *conn)
        .await
        .map_err(store_error)?;
    Ok(Some(KnownHead {
        head_sha: get(&row, "head_sha")?,
        head_at: time(get(&row, "head_at")?)?,
    }))
}

impl SqliteStore {
    /// One supersede in one write transaction.
    pub(super) async fn supersede_tx(
        &self,
        request: &SupersedeRequest,
        now: DateTime<Utc>,
    ) -> Result<SupersedeOutcome, StoreError> {
        let head = &request.head;
        let mut tx = self.write().await?;
        let known = known_head(&mut tx, request, now).await?;
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
            self.committed();
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
                .bind(us(head_at))
                .bind(us(now))
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
                        .bind(us(now))
                        .execute(&mut *tx)
                        .await
                        .map_err(store_error)?;
                    outcome.marked.push(task_id);
                }
            }
        }
        tx.commit().await.map_err(store_error)?;
        self.committed();
        Ok(outcome)
    }

    /// Cancels a closed pull request's open work in one write transaction.
    pub(super) async fn close_tx(
        &self,
        repository: &str,
        pr_number: i64,
        message: &str,
        running: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.write().await?;
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
        self.committed();
        Ok(cancelled)
    }
}
