//! [`OperationStore`] on PostgreSQL: bulk operations (`operations`).
//!
//! A retry batch is one transaction: the operation row is locked (`FOR UPDATE`, so a cancel
//! waits for the batch or the batch sees the cancel), then one statement picks the next
//! matching tasks after the cursor (`FOR UPDATE SKIP LOCKED`: rows another operation is
//! retrying right now are left to it), retries them as a manual retry does (events re-opened
//! with their `open_tasks` counter, unresolved agent-run intents released), and the operation's
//! counts and lease are written.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::queue::TaskRef;
use orchestrator_core::store::Page;
use orchestrator_core::store::operation::{
    CancelOperation, Operation, OperationFilter, OperationKind, OperationStore, Preview, Progress,
    RetryBatch,
};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::PgStore;
use crate::error::store_error;
use crate::operation::{
    ADVANCE, CANCEL, COMPLETE, GET, claim, counter, event_conditions, filter_text, limits,
    list_statement, parse_filter, parse_kind, parse_status, stored, task_conditions,
};

const CONTAINS: &str = "strpos";

const INSERT: &str = "INSERT INTO operations (id, kind, criteria, forced, status, matched, \
    done, failed, skipped, row_cursor, created_at, updated_at) \
    VALUES ($1, $2, CAST($3 AS JSONB), $4, 'pending', $5, 0, 0, 0, 0, $6, $6)";

const CLAIM: &str = claim!(" FOR UPDATE SKIP LOCKED");

/// Decodes an `operations` row.
fn operation(row: &PgRow) -> Result<Operation, StoreError> {
    let get = |e| store_error(e);
    Ok(Operation {
        id: row.try_get("id").map_err(get)?,
        kind: parse_kind(row.try_get("kind").map_err(get)?)?,
        filter: parse_filter(row.try_get("criteria").map_err(get)?)?,
        force: row.try_get("forced").map_err(get)?,
        status: parse_status(row.try_get("status").map_err(get)?)?,
        matched: counter(row.try_get("matched").map_err(get)?),
        done: counter(row.try_get("done").map_err(get)?),
        failed: counter(row.try_get("failed").map_err(get)?),
        skipped: counter(row.try_get("skipped").map_err(get)?),
        cursor: row.try_get("row_cursor").map_err(get)?,
        lease_owner: row.try_get("lease_owner").map_err(get)?,
        lease_expires_at: row.try_get("lease_expires_at").map_err(get)?,
        created_at: row.try_get("created_at").map_err(get)?,
        started_at: row.try_get("started_at").map_err(get)?,
        finished_at: row.try_get("finished_at").map_err(get)?,
        updated_at: row.try_get("updated_at").map_err(get)?,
    })
}

/// `SELECT <what> FROM workflow_tasks t WHERE t.id > cursor AND unchanged since as_of ...`.
fn tasks_query(
    what: &str,
    filter: &OperationFilter,
    cursor: i64,
    as_of: DateTime<Utc>,
) -> QueryBuilder<Postgres> {
    let mut query = QueryBuilder::new(format!("SELECT {what} FROM workflow_tasks t WHERE t.id > "));
    query
        .push_bind(cursor)
        .push(" AND t.updated_at <= ")
        .push_bind(as_of);
    task_conditions(&mut query, filter, CONTAINS, |t| t);
    query
}

/// `SELECT <what> FROM webhook_events e WHERE e.id > cursor AND ...`.
fn events_query(
    what: &str,
    filter: &OperationFilter,
    cursor: i64,
    as_of: DateTime<Utc>,
) -> QueryBuilder<Postgres> {
    let mut query = QueryBuilder::new(format!("SELECT {what} FROM webhook_events e WHERE e.id > "));
    query.push_bind(cursor);
    event_conditions(&mut query, filter, as_of, CONTAINS, |t| t);
    query
}

#[async_trait]
impl OperationStore for PgStore {
    async fn preview(
        &self,
        kind: OperationKind,
        filter: &OperationFilter,
        sample: u32,
        now: DateTime<Utc>,
    ) -> Result<Preview, StoreError> {
        let (mut count, mut first) = match kind {
            OperationKind::RetryTasks => (
                tasks_query("count(*)", filter, 0, now),
                tasks_query("t.id, t.task_id", filter, 0, now),
            ),
            OperationKind::ReprocessEvents => (
                events_query("count(*)", filter, 0, now),
                events_query("e.id", filter, 0, now),
            ),
        };
        let matched: i64 = count
            .build()
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?
            .try_get(0)
            .map_err(store_error)?;
        let alias = if kind == OperationKind::RetryTasks {
            "t"
        } else {
            "e"
        };
        first
            .push(format!(" ORDER BY {alias}.id LIMIT "))
            .push_bind(i64::from(sample));
        let rows = first
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        let mut preview = Preview {
            matched: counter(matched),
            ..Preview::default()
        };
        for row in rows {
            match kind {
                OperationKind::RetryTasks => preview
                    .task_ids
                    .push(row.try_get("task_id").map_err(store_error)?),
                OperationKind::ReprocessEvents => preview
                    .event_ids
                    .push(row.try_get("id").map_err(store_error)?),
            }
        }
        Ok(preview)
    }

    async fn create_operation(&self, op: &Operation) -> Result<(), StoreError> {
        sqlx::query(INSERT)
            .bind(op.id)
            .bind(op.kind.as_str())
            .bind(filter_text(&op.filter)?)
            .bind(op.force)
            .bind(stored(op.matched))
            .bind(op.created_at)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn get_operation(&self, id: Uuid) -> Result<Option<Operation>, StoreError> {
        let row = sqlx::query(GET)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(operation).transpose()
    }

    async fn list_operations(
        &self,
        before: Option<Uuid>,
        page: Page,
    ) -> Result<Vec<Operation>, StoreError> {
        let (limit, offset) = limits(page);
        let mut query = sqlx::query(list_statement(before)).bind(limit).bind(offset);
        if let Some(before) = before {
            query = query.bind(before);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(store_error)?;
        rows.iter().map(operation).collect()
    }

    async fn cancel_operation(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<CancelOperation, StoreError> {
        let row = sqlx::query(CANCEL)
            .bind(id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        if let Some(row) = row {
            return Ok(CancelOperation::Cancelled(Box::new(operation(&row)?)));
        }
        Ok(match self.get_operation(id).await? {
            Some(op) => CancelOperation::Finished(Box::new(op)),
            None => CancelOperation::NotFound,
        })
    }

    async fn claim_operation(
        &self,
        worker: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Operation>, StoreError> {
        let row = sqlx::query(CLAIM)
            .bind(worker)
            .bind(lease_until)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(operation).transpose()
    }

    async fn retry_batch(
        &self,
        id: Uuid,
        worker: &str,
        limit: u32,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RetryBatch, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let held = sqlx::query(concat!(
            "SELECT ",
            crate::operation::operation_columns!(),
            " FROM operations WHERE id = $1 AND status = 'running' AND lease_owner = $2 FOR UPDATE"
        ))
        .bind(id)
        .bind(worker)
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        let Some(op) = held.as_ref().map(operation).transpose()? else {
            return Ok(RetryBatch::default());
        };
        let mut query = retry_statement(&op, limit, now);
        let rows = query
            .build()
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
        let mut retried = Vec::with_capacity(rows.len());
        let mut cursor = op.cursor;
        for row in &rows {
            let row_id: i64 = row.try_get("id").map_err(store_error)?;
            cursor = cursor.max(row_id);
            retried.push(TaskRef {
                task_id: row.try_get("task_id").map_err(store_error)?,
                run_at: row.try_get("run_at").map_err(store_error)?,
            });
        }
        if retried.is_empty() {
            sqlx::query(COMPLETE)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        } else {
            sqlx::query(ADVANCE)
                .bind(id)
                .bind(cursor)
                .bind(stored(retried.len() as u64))
                .bind(0_i64)
                .bind(0_i64)
                .bind(lease_until)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        let more = !retried.is_empty();
        Ok(RetryBatch { retried, more })
    }

    async fn next_events(&self, op: &Operation, limit: u32) -> Result<Vec<i64>, StoreError> {
        let mut query = events_query("e.id", &op.filter, op.cursor, op.created_at);
        query
            .push(" ORDER BY e.id LIMIT ")
            .push_bind(i64::from(limit));
        let rows = query
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(store_error))
            .collect()
    }

    async fn record_progress(
        &self,
        id: Uuid,
        worker: &str,
        progress: Progress,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let held = sqlx::query(
            "SELECT id FROM operations WHERE id = $1 AND status = 'running' AND lease_owner = $2 \
             FOR UPDATE",
        )
        .bind(id)
        .bind(worker)
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        if held.is_none() {
            return Ok(false);
        }
        sqlx::query(ADVANCE)
            .bind(id)
            .bind(progress.cursor)
            .bind(stored(progress.done))
            .bind(stored(progress.failed))
            .bind(stored(progress.skipped))
            .bind(lease_until)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        if progress.finished {
            sqlx::query(COMPLETE)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(true)
    }
}

/// One statement: the next `limit` matching tasks after the cursor, locked (skipping rows another
/// transaction holds), retried as a manual retry does; returns their row ids, ids and due times.
fn retry_statement(op: &Operation, limit: u32, now: DateTime<Utc>) -> QueryBuilder<Postgres> {
    let mut query = QueryBuilder::<Postgres>::new(
        "WITH picked AS (SELECT t.id FROM workflow_tasks t WHERE t.id > ",
    );
    query
        .push_bind(op.cursor)
        .push(" AND t.updated_at <= ")
        .push_bind(op.created_at);
    task_conditions(&mut query, &op.filter, CONTAINS, |t| t);
    query
        .push(" ORDER BY t.id LIMIT ")
        .push_bind(i64::from(limit))
        .push(
            " FOR UPDATE SKIP LOCKED), \
             r AS (UPDATE workflow_tasks w SET status = 'pending', run_at = ",
        )
        .push_bind(now)
        .push(
            ", retry_count = 0, completed_at = NULL, error_message = NULL, lease_owner = NULL, \
             lease_expires_at = NULL, updated_at = ",
        )
        .push_bind(now)
        .push(
            " FROM picked WHERE w.id = picked.id RETURNING w.id, w.task_id, w.run_at, \
             w.webhook_event_id), \
             e AS (UPDATE webhook_events ev SET open_tasks = ev.open_tasks + c.n, \
             processed = FALSE, processing_completed_at = NULL, updated_at = ",
        )
        .push_bind(now)
        .push(
            " FROM (SELECT webhook_event_id, count(*) AS n FROM r \
             WHERE webhook_event_id IS NOT NULL GROUP BY webhook_event_id) c \
             WHERE ev.id = c.webhook_event_id), \
             a AS (UPDATE agent_runs ar SET state = 'released', updated_at = ",
        )
        .push_bind(now)
        .push(
            " FROM r WHERE ar.task_id = r.task_id AND ar.state = 'unresolved') \
             SELECT id, task_id, run_at FROM r",
        );
    query
}
