//! [`EventStore`] and [`BatchStore`] on SQLite: ingest (one delivery or a batch, the payload
//! compressed before the write lock; each accepted delivery's pull-request updates in the same
//! write transaction), event list and detail, reprocess.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::event::{EventSummary, NewEvent, WebhookEvent};
use orchestrator_core::store::{
    BatchDelivery, BatchStore, EventFilter, EventStore, IngestOutcome, NewDelivery, Page,
    ReprocessOutcome,
};
use orchestrator_core::task::NewTask;
use sqlx::Row;
use sqlx::sqlite::SqliteConnection;

use super::SqliteStore;
use super::insert::{Delivery, ingest_many, insert_event};
use super::payload::PreparedPayload;
use super::rows::{event, insert_task, summary, us};
use super::supersede::apply_pr_updates;
use crate::error::{one_by_one, settle_batch, store_error};

const EXISTING: &str = "SELECT id FROM webhook_events WHERE delivery_id = $1";

/// Reopens the event only while it has no open task (inside the write transaction, so nothing
/// can change the counter between this check and the task inserts).
const REOPEN: &str = "UPDATE webhook_events SET open_tasks = open_tasks + $2, \
    processed = (open_tasks + $2 = 0), \
    processing_completed_at = CASE WHEN open_tasks + $2 = 0 THEN $3 END, \
    error_message = NULL, parse_error = NULL, retry_count = retry_count + 1, updated_at = $3 \
    WHERE id = $1 AND open_tasks = 0 RETURNING id";

const EVENT_EXISTS: &str = "SELECT id FROM webhook_events WHERE id = $1";

const OPEN_TASKS: &str = "SELECT task_id FROM workflow_tasks WHERE webhook_event_id = $1 \
    AND status IN ('pending', 'running', 'retrying') ORDER BY id";

/// The event list without its conditions (see `crate::list`).
const LIST: &str = "SELECT id, delivery_id, event_type, action, processed, created_at, error_message \
    FROM webhook_events";

const GET: &str = "SELECT id, delivery_id, event_type, action, source, repository, installation_id, \
    payload, payload_encoding, headers, processed, processing_started_at, processing_completed_at, error_message, \
    parse_error, retry_count, created_at, updated_at FROM webhook_events WHERE id = $1";

/// Ingests one delivery inside the open write transaction `conn`, and applies its pull-request
/// updates there when it is accepted.
async fn ingest_on(
    conn: &mut SqliteConnection,
    delivery: &NewDelivery,
    prepared: Option<&PreparedPayload>,
    compress: bool,
) -> Result<IngestOutcome, StoreError> {
    let (new, tasks) = (&delivery.event, &delivery.tasks);
    let at = new.received_at;
    let Some(event_id) = insert_event(&mut *conn, new, prepared, tasks.len(), compress).await?
    else {
        let row = sqlx::query(EXISTING)
            .bind(&new.delivery_id)
            .fetch_one(&mut *conn)
            .await
            .map_err(store_error)?;
        return Ok(IngestOutcome::Duplicate {
            event_id: row.try_get(0).map_err(store_error)?,
        });
    };
    for task in tasks {
        insert_task(&mut *conn, task, Some(event_id), None, at).await?;
    }
    let pr_updates = apply_pr_updates(conn, &delivery.pr_updates, at).await?;
    Ok(IngestOutcome::Accepted {
        event_id,
        task_ids: tasks.iter().map(|t| t.task_id).collect(),
        pr_updates,
    })
}

/// Why the reopen of event `id` changed nothing: it does not exist, or it has open tasks.
async fn refused(conn: &mut SqliteConnection, id: i64) -> Result<ReprocessOutcome, StoreError> {
    let exists = sqlx::query(EVENT_EXISTS)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?;
    if exists.is_none() {
        return Ok(ReprocessOutcome::NotFound);
    }
    let open_tasks = sqlx::query_scalar(OPEN_TASKS)
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .map_err(store_error)?;
    if open_tasks.is_empty() {
        return Err(StoreError::new(
            orchestrator_core::error::StoreErrorKind::Internal,
            format!("event {id}: its open-task count disagrees with its tasks"),
        ));
    }
    Ok(ReprocessOutcome::Busy {
        event_id: id,
        open_tasks,
    })
}

impl SqliteStore {
    /// One delivery whose payload was prepared (compressed) before the write lock.
    async fn ingest_prepared(
        &self,
        (delivery, prepared): Delivery,
    ) -> Result<IngestOutcome, StoreError> {
        let mut tx = self.write().await?;
        let outcome = ingest_on(
            &mut tx,
            &delivery,
            prepared.as_ref(),
            self.compress_payloads,
        )
        .await?;
        tx.commit().await.map_err(store_error)?;
        self.committed();
        Ok(outcome)
    }

    /// The whole batch in one write transaction (one commit, a few multi-row inserts); any error
    /// rolls all of it back.
    async fn ingest_together(&self, batch: &[Delivery]) -> Result<Vec<IngestOutcome>, StoreError> {
        let mut tx = self.write().await?;
        let outcomes = ingest_many(&mut tx, batch, self.compress_payloads).await?;
        tx.commit().await.map_err(store_error)?;
        self.committed();
        Ok(outcomes)
    }
}

/// The payload is compressed in the caller's task, so the writer only copies it.
#[async_trait]
impl BatchStore for SqliteStore {
    type Prepared = Option<PreparedPayload>;

    fn prepare(&self, event: &NewEvent) -> Option<PreparedPayload> {
        PreparedPayload::new(&event.payload, self.compress_payloads)
    }

    /// One write transaction (one commit, one sync) for the whole batch. If any delivery fails,
    /// the transaction is rolled back and every delivery is ingested on its own, so each gets
    /// the outcome `ingest` gives it and no failure takes another delivery with it; when the
    /// database is unavailable (locked, disk full) each gets that failure at once.
    async fn ingest_batch(
        &self,
        batch: Vec<BatchDelivery<Option<PreparedPayload>>>,
    ) -> Vec<Result<IngestOutcome, StoreError>> {
        if batch.len() < 2 {
            return one_by_one(batch, |d| self.ingest_prepared(d)).await;
        }
        let together = self.ingest_together(&batch).await;
        settle_batch(batch, together, |d| self.ingest_prepared(d)).await
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn ingest_delivery(&self, delivery: NewDelivery) -> Result<IngestOutcome, StoreError> {
        let prepared = self.prepare(&delivery.event);
        self.ingest_prepared((delivery, prepared)).await
    }

    async fn list_events(
        &self,
        filter: &EventFilter,
        page: Page,
    ) -> Result<Vec<EventSummary>, StoreError> {
        let rows = crate::list::query(LIST, crate::list::events(filter), page)
            .build()
            .fetch_all(&self.reader)
            .await
            .map_err(store_error)?;
        rows.iter().map(summary).collect()
    }

    async fn get_event(&self, id: i64) -> Result<Option<WebhookEvent>, StoreError> {
        let row = sqlx::query(GET)
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(store_error)?;
        row.as_ref().map(event).transpose()
    }

    async fn reprocess_event(
        &self,
        id: i64,
        tasks: Vec<NewTask>,
        now: DateTime<Utc>,
    ) -> Result<ReprocessOutcome, StoreError> {
        let mut tx = self.write().await?;
        let row = sqlx::query(REOPEN)
            .bind(id)
            .bind(i64::try_from(tasks.len()).unwrap_or(i64::MAX))
            .bind(us(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        if row.is_none() {
            return refused(&mut tx, id).await;
        }
        for task in &tasks {
            insert_task(&mut tx, task, Some(id), None, now).await?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(ReprocessOutcome::Reprocessed {
            event_id: id,
            task_ids: tasks.iter().map(|t| t.task_id).collect(),
        })
    }
}
