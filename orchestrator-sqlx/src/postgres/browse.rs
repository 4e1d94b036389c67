//! [`BrowseStore`] on PostgreSQL: keyset-paged event and task lists (see `crate::browse`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::browse::{BrowseStore, EventQuery, EventRow, TaskQuery};
use orchestrator_core::task::Task;
use sqlx::Row;

use super::PgStore;
use super::rows::{summary, task, task_columns};
use crate::error::store_error;

const EVENTS: &str = "SELECT id, delivery_id, event_type, action, processed, created_at, \
    error_message, repository FROM webhook_events";

const TASKS: &str = concat!("SELECT ", task_columns!(), " FROM workflow_tasks");

fn same(at: DateTime<Utc>) -> DateTime<Utc> {
    at
}

#[async_trait]
impl BrowseStore for PgStore {
    async fn browse_events(&self, query: &EventQuery) -> Result<Vec<EventRow>, StoreError> {
        let rows = crate::browse::event_query(EVENTS, query, same)
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                Ok(EventRow {
                    summary: summary(row)?,
                    repository: row.try_get("repository").map_err(store_error)?,
                })
            })
            .collect()
    }

    async fn browse_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>, StoreError> {
        let rows = crate::browse::task_query(TASKS, query, same)
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter().map(task).collect()
    }
}
