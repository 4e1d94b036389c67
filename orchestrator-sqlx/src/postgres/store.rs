//! [`EventStore`] and [`BatchStore`] on PostgreSQL: ingest (one delivery or a batch in one
//! transaction, each accepted delivery's pull-request updates in that transaction), event
//! list and detail, reprocess.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::{StoreError, StoreErrorKind};
use orchestrator_core::event::{EventSummary, NewEvent, WebhookEvent};
use orchestrator_core::store::supersede::PrUpdate;
use orchestrator_core::store::{
    BatchDelivery, BatchStore, EventFilter, EventStore, IngestOutcome, NewDelivery, Page,
    ReprocessOutcome,
};
use orchestrator_core::task::NewTask;
use sqlx::Row;
use sqlx::postgres::PgConnection;

use super::PgStore;
use super::rows::{bind_one_task, bind_tasks, event, insert_one_task, insert_tasks, summary};
use super::supersede::{PrLock, all_settled, apply_pr_updates, lock_pull_requests};
use crate::error::{one_by_one, settle_batch, store_error};
use crate::plan::headers_json;

/// One statement: the event, then its tasks only if the event row was inserted.
const INGEST: &str = concat!(
    "WITH ev AS (INSERT INTO webhook_events (delivery_id, event_type, action, source, repository, \
     installation_id, payload, headers, processed, processing_started_at, processing_completed_at, \
     open_tasks, created_at, updated_at, parse_error, error_message) \
     VALUES ($14, $15, $16, $17, $18, $19, $20::json, $21::jsonb, $22, $23, $23, $24, $25, $25, \
     $26, $27) \
     ON CONFLICT (delivery_id) DO NOTHING RETURNING id), \
     ins AS (",
    insert_tasks!("ev.id", "NULL::uuid", "$25", "ev"),
    ") SELECT id FROM ev"
);

/// [`INGEST`] for exactly one task.
const INGEST_ONE: &str = concat!(
    "WITH ev AS (INSERT INTO webhook_events (delivery_id, event_type, action, source, repository, \
     installation_id, payload, headers, processed, processing_started_at, processing_completed_at, \
     open_tasks, created_at, updated_at, parse_error, error_message) \
     VALUES ($14, $15, $16, $17, $18, $19, $20::json, $21::jsonb, $22, $23, $23, $24, $25, $25, \
     $26, $27) \
     ON CONFLICT (delivery_id) DO NOTHING RETURNING id), \
     ins AS (",
    insert_one_task!("ev.id", "$25", "ev"),
    ") SELECT id FROM ev"
);

const EXISTING: &str = "SELECT id FROM webhook_events WHERE delivery_id = $1";

/// One statement: reopen the event, insert the new tasks -- only while it has no open task. The
/// condition is on the event row itself (its `open_tasks` counter, changed in the same statement
/// as every task status), so a racing reprocess or task finish waits for the row lock and then
/// sees the other's result.
const REPROCESS: &str = concat!(
    "WITH ev AS (UPDATE webhook_events SET open_tasks = open_tasks + $15, \
     processed = (open_tasks + $15 = 0), \
     processing_completed_at = CASE WHEN open_tasks + $15 = 0 THEN $16 END, \
     error_message = NULL, parse_error = NULL, retry_count = retry_count + 1, updated_at = $16 \
     WHERE id = $14 AND open_tasks = 0 RETURNING id), \
     ins AS (",
    insert_tasks!("ev.id", "NULL::uuid", "$16", "ev"),
    ") SELECT id FROM ev"
);

/// The event list without its conditions (see `crate::list`).
const LIST: &str = "SELECT id, delivery_id, event_type, action, processed, created_at, error_message \
    FROM webhook_events";

const GET: &str = "SELECT id, delivery_id, event_type, action, source, repository, installation_id, \
    payload::text AS payload, headers::text AS headers, processed, processing_started_at, \
    processing_completed_at, error_message, parse_error, retry_count, created_at, updated_at \
    FROM webhook_events WHERE id = $1";

/// Why a reprocess was refused: the event (if it exists) and its open tasks.
const OPEN_TASKS: &str = "SELECT e.id, t.task_id FROM webhook_events e \
    LEFT JOIN workflow_tasks t ON t.webhook_event_id = e.id \
    AND t.status IN ('pending', 'running', 'retrying') WHERE e.id = $1 ORDER BY t.id";

/// Ingests one delivery on `conn` (a pool connection or an open transaction): one statement,
/// plus a look-up of the existing id for a duplicate.
async fn ingest_on(
    conn: &mut PgConnection,
    new: &NewEvent,
    tasks: &[NewTask],
) -> Result<IngestOutcome, StoreError> {
    // An unparsed event stays unprocessed (with its parse error as its error) until reprocessed.
    let processed = tasks.is_empty() && new.parse_error.is_none();
    let settled_at: Option<DateTime<Utc>> = processed.then_some(new.received_at);
    let error_message = new.parse_error.as_deref().map(NewEvent::unparsed_message);
    let payload = String::from_utf8_lossy(&new.payload).into_owned();
    let open = i32::try_from(tasks.len()).unwrap_or(i32::MAX);
    loop {
        let query = match tasks {
            [one] => bind_one_task(sqlx::query(INGEST_ONE), one),
            many => bind_tasks(sqlx::query(INGEST), many),
        };
        let row = query
            .bind(&new.delivery_id)
            .bind(&new.event_type)
            .bind(&new.action)
            .bind(&new.source)
            .bind(&new.repository)
            .bind(new.installation_id)
            .bind(&payload)
            .bind(headers_json(&new.headers))
            .bind(processed)
            .bind(settled_at)
            .bind(open)
            .bind(new.received_at)
            .bind(&new.parse_error)
            .bind(&error_message)
            .fetch_optional(&mut *conn)
            .await
            .map_err(store_error)?;
        if let Some(row) = row {
            let event_id: i64 = row.try_get(0).map_err(store_error)?;
            let task_ids = tasks.iter().map(|t| t.task_id).collect();
            return Ok(IngestOutcome::Accepted {
                event_id,
                task_ids,
                pr_updates: Vec::new(),
            });
        }
        let existing = sqlx::query(EXISTING)
            .bind(&new.delivery_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(store_error)?;
        if let Some(row) = existing {
            return Ok(IngestOutcome::Duplicate {
                event_id: row.try_get(0).map_err(store_error)?,
            });
        }
        // The conflicting row was removed in between: insert again.
    }
}

/// [`ingest_on`] for each delivery in order, then, for each accepted one, its pull-request
/// updates, on the same transaction `conn` (whose advisory locks the caller took, as `mode`);
/// `None` when [`apply_pr_updates`] needs the exclusive lock.
async fn ingest_and_update(
    conn: &mut PgConnection,
    deliveries: &[&NewDelivery],
    mode: PrLock,
) -> Result<Option<Vec<IngestOutcome>>, StoreError> {
    let mut outcomes = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let mut outcome = ingest_on(conn, &delivery.event, &delivery.tasks).await?;
        if let IngestOutcome::Accepted { pr_updates, .. } = &mut outcome
            && !delivery.pr_updates.is_empty()
        {
            let at = delivery.event.received_at;
            let Some(applied) = apply_pr_updates(conn, &delivery.pr_updates, at, mode).await?
            else {
                return Ok(None);
            };
            *pr_updates = applied;
        }
        outcomes.push(outcome);
    }
    Ok(Some(outcomes))
}

impl PgStore {
    /// `deliveries` in one transaction (one commit); any error rolls all of it back. The pull
    /// requests their updates touch are locked first, in one order: shared, and when every
    /// update is then settled the batch commits under them (such transactions of one pull
    /// request commit side by side); otherwise it is rolled back and done again with the locks
    /// exclusive (`postgres/supersede.rs`).
    async fn ingest_locked(
        &self,
        deliveries: &[&NewDelivery],
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let updates: Vec<&PrUpdate> = deliveries.iter().flat_map(|d| &d.pr_updates).collect();
        let pull_requests = || updates.iter().map(|u| u.pull_request());
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        if !updates.is_empty() {
            lock_pull_requests(&mut tx, pull_requests(), PrLock::Shared).await?;
            let tasks: Vec<&NewTask> = deliveries.iter().flat_map(|d| &d.tasks).collect();
            if all_settled(&mut tx, &updates, &tasks).await?
                && let Some(outcomes) =
                    ingest_and_update(&mut tx, deliveries, PrLock::Shared).await?
            {
                tx.commit().await.map_err(store_error)?;
                return Ok(outcomes);
            }
            // Something to write: again, with the locks exclusive.
            tx.rollback().await.map_err(store_error)?;
            tx = self.pool.begin().await.map_err(store_error)?;
        }
        lock_pull_requests(&mut tx, pull_requests(), PrLock::Exclusive).await?;
        let outcomes = ingest_and_update(&mut tx, deliveries, PrLock::Exclusive)
            .await?
            .ok_or_else(|| {
                StoreError::new(
                    StoreErrorKind::Internal,
                    "pull-request updates under the exclusive lock asked for it again",
                )
            })?;
        tx.commit().await.map_err(store_error)?;
        Ok(outcomes)
    }
}

/// Nothing to prepare: PostgreSQL compresses large payloads itself (TOAST).
#[async_trait]
impl BatchStore for PgStore {
    type Prepared = ();

    fn prepare(&self, _event: &NewEvent) {}

    /// One transaction for the whole batch. If any delivery fails (a conflicting task id, a
    /// deadlock between batches racing on the same delivery ids), the transaction is rolled
    /// back and every delivery is ingested on its own, so each gets the outcome `ingest` gives
    /// it and no failure takes another delivery with it; when the database is unavailable (no
    /// connection) each gets that failure at once.
    async fn ingest_batch(
        &self,
        batch: Vec<BatchDelivery<()>>,
    ) -> Vec<Result<IngestOutcome, StoreError>> {
        let one = |(delivery, ()): BatchDelivery<()>| self.ingest_delivery(delivery);
        if batch.len() < 2 {
            return one_by_one(batch, one).await;
        }
        let deliveries: Vec<&NewDelivery> = batch.iter().map(|(d, ())| d).collect();
        let together = self.ingest_locked(&deliveries).await;
        settle_batch(batch, together, one).await
    }
}

#[async_trait]
impl EventStore for PgStore {
    /// One statement (autocommit) without pull-request updates; with them, one transaction:
    /// the pull requests' advisory locks (shared when the updates are settled), the statement,
    /// the updates.
    async fn ingest_delivery(&self, delivery: NewDelivery) -> Result<IngestOutcome, StoreError> {
        if delivery.pr_updates.is_empty() {
            let mut conn = self.pool.acquire().await.map_err(store_error)?;
            return ingest_on(&mut conn, &delivery.event, &delivery.tasks).await;
        }
        let mut outcomes = self.ingest_locked(&[&delivery]).await?;
        outcomes.pop().ok_or_else(|| {
            StoreError::new(StoreErrorKind::Internal, "an ingest answered no outcome")
        })
    }

    async fn list_events(
        &self,
        filter: &EventFilter,
        page: Page,
    ) -> Result<Vec<EventSummary>, StoreError> {
        let rows = crate::list::query(LIST, crate::list::events(filter), page)
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter().map(summary).collect()
    }

    async fn get_event(&self, id: i64) -> Result<Option<WebhookEvent>, StoreError> {
        let row = sqlx::query(GET)
            .bind(id)
            .fetch_optional(&self.pool)
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
        let added = i32::try_from(tasks.len()).unwrap_or(i32::MAX);
        // Open tasks may finish between the refused update and the look-up that names them:
        // then the update is tried again.
        for _ in 0..3 {
            let row = bind_tasks(sqlx::query(REPROCESS), &tasks)
                .bind(id)
                .bind(added)
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error)?;
            if row.is_some() {
                return Ok(ReprocessOutcome::Reprocessed {
                    event_id: id,
                    task_ids: tasks.iter().map(|t| t.task_id).collect(),
                });
            }
            let rows = sqlx::query(OPEN_TASKS)
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(store_error)?;
            if rows.is_empty() {
                return Ok(ReprocessOutcome::NotFound);
            }
            let open_tasks = rows
                .iter()
                .filter_map(|r| r.try_get::<Option<uuid::Uuid>, _>(1).transpose())
                .collect::<Result<Vec<_>, _>>()
                .map_err(store_error)?;
            if !open_tasks.is_empty() {
                return Ok(ReprocessOutcome::Busy {
                    event_id: id,
                    open_tasks,
                });
            }
        }
        Err(StoreError::new(
            orchestrator_core::error::StoreErrorKind::Internal,
            format!("event {id}: its open-task count disagrees with its tasks"),
        ))
    }
}
