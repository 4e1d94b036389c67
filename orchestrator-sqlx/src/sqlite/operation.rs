//! [`OperationStore`] on SQLite: bulk operations (`operations`).
//!
//! Every write is one `BEGIN IMMEDIATE` transaction on the writer: a retry batch checks that its
//! runner still holds the operation, retries the next matching tasks after the cursor (only
//! those unchanged since the operation was created), re-opens their events, releases their
//! unresolved agent-run intents and records the counts, with no other writer in between.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::queue::TaskRef;
use orchestrator_core::store::Page;
use orchestrator_core::store::operation::{
    CancelOperation, Operation, OperationFilter, OperationKind, OperationStore, Preview, Progress,
    RetryBatch,
};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};
use uuid::Uuid;

use super::SqliteStore;
use super::rows::{get, time, us};
use crate::error::store_error;
use crate::operation::{
    ADVANCE, CANCEL, COMPLETE, GET, HELD, claim, counter, event_conditions, filter_text, limits,
    list_statement, parse_filter, parse_kind, parse_status, stored, task_conditions,
};

const CONTAINS: &str = "instr";

const INSERT: &str = "INSERT INTO operations (id, kind, criteria, forced, status, matched, \
    done, failed, skipped, row_cursor, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, 'pending', $5, 0, 0, 0, 0, $6, $6)";

const CLAIM: &str = claim!("");

const REOPEN_EVENT: &str = "UPDATE webhook_events SET open_tasks = open_tasks + $2, processed = 0, \
    processing_completed_at = NULL, updated_at = $3 WHERE id = $1";

const RELEASE_INTENTS: &str = "UPDATE agent_runs SET state = 'released', updated_at = $2 \
    WHERE task_id = $1 AND state = 'unresolved'";

fn opt_time(micros: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    micros.map(time).transpose()
}

/// Decodes an `operations` row.
fn operation(row: &SqliteRow) -> Result<Operation, StoreError> {
    Ok(Operation {
        id: get(row, "id")?,
        kind: parse_kind(&get::<String>(row, "kind")?)?,
        filter: parse_filter(&get::<String>(row, "criteria")?)?,
        force: get(row, "forced")?,
        status: parse_status(&get::<String>(row, "status")?)?,
        matched: counter(get(row, "matched")?),
        done: counter(get(row, "done")?),
        failed: counter(get(row, "failed")?),
        skipped: counter(get(row, "skipped")?),
        cursor: get(row, "row_cursor")?,
        lease_owner: get(row, "lease_owner")?,
        lease_expires_at: opt_time(get(row, "lease_expires_at")?)?,
        created_at: time(get(row, "created_at")?)?,
        started_at: opt_time(get(row, "started_at")?)?,
        finished_at: opt_time(get(row, "finished_at")?)?,
        updated_at: time(get(row, "updated_at")?)?,
    })
}

/// `<head> FROM workflow_tasks t WHERE t.id > cursor AND unchanged since as_of ...`.
fn tasks_query(
    head: &str,
    filter: &OperationFilter,
    cursor: i64,
    as_of: DateTime<Utc>,
) -> QueryBuilder<Sqlite> {
    let mut query = QueryBuilder::new(format!("{head} FROM workflow_tasks t WHERE t.id > "));
    query
        .push_bind(cursor)
        .push(" AND t.updated_at <= ")
        .push_bind(us(as_of));
    task_conditions(&mut query, filter, CONTAINS, us);
    query
}

/// `SELECT <what> FROM webhook_events e WHERE e.id > cursor AND ...`.
fn events_query(
    what: &str,
    filter: &OperationFilter,
    cursor: i64,
    as_of: DateTime<Utc>,
) -> QueryBuilder<Sqlite> {
    let mut query = QueryBuilder::new(format!("SELECT {what} FROM webhook_events e WHERE e.id > "));
    query.push_bind(cursor);
    event_conditions(&mut query, filter, as_of, CONTAINS, us);
    query
}

#[async_trait]
impl OperationStore for SqliteStore {
    async fn preview(
        &self,
        kind: OperationKind,
        filter: &OperationFilter,
        sample: u32,
        now: DateTime<Utc>,
    ) -> Result<Preview, StoreError> {
        let (mut count, mut first, alias) = match kind {
            OperationKind::RetryTasks => (
                tasks_query("SELECT count(*)", filter, 0, now),
                tasks_query("SELECT t.id, t.task_id", filter, 0, now),
                "t",
            ),
            OperationKind::ReprocessEvents => (
                events_query("count(*)", filter, 0, now),
                events_query("e.id", filter, 0, now),
                "e",
            ),
        };
        let matched: i64 = count
            .build()
            .fetch_one(&self.reader)
            .await
            .map_err(store_error)?
            .try_get(0)
            .map_err(store_error)?;
        first
            .push(format!(" ORDER BY {alias}.id LIMIT "))
            .push_bind(i64::from(sample));
        let rows = first
            .build()
            .fetch_all(&self.reader)
            .await
            .map_err(store_error)?;
        let mut preview = Preview {
            matched: counter(matched),
            ..Preview::default()
        };
        for row in rows {
            match kind {
                OperationKind::RetryTasks => preview.task_ids.push(get(&row, "task_id")?),
                OperationKind::ReprocessEvents => preview.event_ids.push(get(&row, "id")?),
            }
        }
        Ok(preview)
    }

    async fn create_operation(&self, op: &Operation) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(INSERT)
            .bind(op.id)
            .bind(op.kind.as_str())
            .bind(filter_text(&op.filter)?)
            .bind(op.force)
            .bind(stored(op.matched))
            .bind(us(op.created_at))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        self.committed();
        Ok(())
    }

    async fn get_operation(&self, id: Uuid) -> Result<Option<Operation>, StoreError> {
        let row = sqlx::query(GET)
            .bind(id)
            .fetch_optional(&self.reader)
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
        let rows = query.fetch_all(&self.reader).await.map_err(store_error)?;
        rows.iter().map(operation).collect()
    }

    async fn cancel_operation(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<CancelOperation, StoreError> {
        let mut tx = self.write().await?;
        let row = sqlx::query(CANCEL)
            .bind(id)
            .bind(us(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        let outcome = match row {
            Some(row) => CancelOperation::Cancelled(Box::new(operation(&row)?)),
            None => match sqlx::query(GET)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(store_error)?
            {
                Some(row) => CancelOperation::Finished(Box::new(operation(&row)?)),
                None => CancelOperation::NotFound,
            },
        };
        tx.commit().await.map_err(store_error)?;
        self.committed();
        Ok(outcome)
    }

    async fn claim_operation(
        &self,
        worker: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Operation>, StoreError> {
        let mut tx = self.write().await?;
        let row = sqlx::query(CLAIM)
            .bind(worker)
            .bind(us(lease_until))
            .bind(us(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        self.committed();
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
        let mut tx = self.write().await?;
        let held = sqlx::query(HELD)
            .bind(id)
            .bind(worker)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        let Some(op) = held.as_ref().map(operation).transpose()? else {
            return Ok(RetryBatch::default());
        };
        let mut query = QueryBuilder::<Sqlite>::new(
            "UPDATE workflow_tasks SET status = 'pending', retry_count = 0, completed_at = NULL, \
             error_message = NULL, lease_owner = NULL, lease_expires_at = NULL, run_at = ",
        );
        query
            .push_bind(us(now))
            .push(", updated_at = ")
            .push_bind(us(now))
            .push(" WHERE id IN (");
        query
            .push("SELECT t.id FROM workflow_tasks t WHERE t.id > ")
            .push_bind(op.cursor)
            .push(" AND t.updated_at <= ")
            .push_bind(us(op.created_at));
        task_conditions(&mut query, &op.filter, CONTAINS, us);
        query
            .push(" ORDER BY t.id LIMIT ")
            .push_bind(i64::from(limit))
            .push(") RETURNING id, task_id, run_at, webhook_event_id");
        let rows = query
            .build()
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
        let mut retried = Vec::with_capacity(rows.len());
        let mut cursor = op.cursor;
        let mut events: std::collections::BTreeMap<i64, i64> = Default::default();
        for row in &rows {
            cursor = cursor.max(get(row, "id")?);
            let task_id: Uuid = get(row, "task_id")?;
            if let Some(event) = get::<Option<i64>>(row, "webhook_event_id")? {
                *events.entry(event).or_default() += 1;
            }
            sqlx::query(RELEASE_INTENTS)
                .bind(task_id)
                .bind(us(now))
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
            retried.push(TaskRef {
                task_id,
                run_at: time(get(row, "run_at")?)?,
            });
        }
        for (event, n) in events {
            sqlx::query(REOPEN_EVENT)
                .bind(event)
                .bind(n)
                .bind(us(now))
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        if retried.is_empty() {
            sqlx::query(COMPLETE)
                .bind(id)
                .bind(us(now))
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        } else {
            let progress = Progress {
                cursor,
                done: retried.len() as u64,
                ..Progress::default()
            };
            advance(&mut tx, id, &progress, lease_until, now).await?;
        }
        tx.commit().await.map_err(store_error)?;
        self.committed();
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
            .fetch_all(&self.reader)
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
        let mut tx = self.write().await?;
        let held = sqlx::query(HELD)
            .bind(id)
            .bind(worker)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        if held.is_none() {
            return Ok(false);
        }
        advance(&mut tx, id, &progress, lease_until, now).await?;
        if progress.finished {
            sqlx::query(COMPLETE)
                .bind(id)
                .bind(us(now))
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        self.committed();
        Ok(true)
    }
}

/// Records a batch's counts and renews the lease.
async fn advance(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    id: Uuid,
    progress: &Progress,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(ADVANCE)
        .bind(id)
        .bind(progress.cursor)
        .bind(stored(progress.done))
        .bind(stored(progress.failed))
        .bind(stored(progress.skipped))
        .bind(us(lease_until))
        .bind(us(now))
        .execute(&mut **tx)
        .await
        .map_err(store_error)?;
    Ok(())
}
