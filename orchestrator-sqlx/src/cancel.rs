//! Cancelling tasks ([`CancelStore`], see [`orchestrator_core::store::cancel`]) on both
//! databases: the statements they share, and the [`SqlStore`] dispatch. Each database's
//! transaction lives in its `cancel.rs`.
//!
//! A cancel reads the task's status with its row locked (PostgreSQL `FOR UPDATE`; SQLite's
//! `BEGIN IMMEDIATE` holds the one write lock), so it serialises with a claim, a finish and an
//! agent-run admission of the same task, which lock the same row.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::cancel::{CancelOutcome, CancelStore};
use orchestrator_core::store::supersede::{SupersedeOutcome, SupersedeRequest};
use uuid::Uuid;

use crate::SqlStore;
use crate::sql_store::both;

/// Adds `$2` to the event's open tasks; when none is left, the event is processed and carries
/// the error of its first failed task (the same rule as a finished attempt).
pub(crate) const SETTLE: &str = "UPDATE webhook_events SET open_tasks = open_tasks + $2, \
    processed = (open_tasks + $2 = 0), \
    processing_completed_at = CASE WHEN open_tasks + $2 = 0 THEN $3 ELSE processing_completed_at END, \
    error_message = CASE WHEN open_tasks + $2 = 0 THEN (SELECT COALESCE(w.error_message, 'task failed') \
    FROM workflow_tasks w WHERE w.webhook_event_id = $1 AND w.status = 'failed' ORDER BY w.id LIMIT 1) \
    ELSE error_message END, updated_at = $3 WHERE id = $1";

#[async_trait]
impl CancelStore for SqlStore {
    async fn cancel_task(
        &self,
        task_id: Uuid,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<CancelOutcome, StoreError> {
        both!(self, s => s.cancel_task(task_id, message, now).await)
    }
    async fn supersede(
        &self,
        request: &SupersedeRequest,
        now: DateTime<Utc>,
    ) -> Result<SupersedeOutcome, StoreError> {
        both!(self, s => s.supersede(request, now).await)
    }
    async fn cancel_closed(
        &self,
        repository: &str,
        pr_number: i64,
        message: &str,
        running: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError> {
        both!(self, s => s.cancel_closed(repository, pr_number, message, running, now).await)
    }
}
