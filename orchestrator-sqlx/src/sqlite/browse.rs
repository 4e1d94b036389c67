//! [`BrowseStore`] on SQLite: keyset-paged event and task lists (see `crate::browse`).

use async_trait::async_trait;

use orchestrator_core::error::StoreError;
use orchestrator_core::store::browse::{BrowseStore, EventQuery, EventRow, TaskQuery};
use orchestrator_core::task::Task;
use sqlx::Row;

use super::SqliteStore;
use super::rows::{summary, task, task_columns, us};
use crate::error::store_error;

const EVENTS: &str = "SELECT id, delivery_id, event_type, action, processed, created_at, \
    error_message, repository FROM webhook_events";

const TASKS: &str = concat!("SELECT ", task_columns!(), " FROM workflow_tasks");

#[async_trait]
impl BrowseStore for SqliteStore {
    async fn browse_events(&self, query: &EventQuery) -> Result<Vec<EventRow>, StoreError> {
        let rows = crate::browse::event_query(EVENTS, query, us)
            .build()
            .fetch_all(&self.reader)
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
        let rows = crate::browse::task_query(TASKS, query, us)
            .build()
            .fetch_all(&self.reader)
            .await
            .map_err(store_error)?;
        rows.iter().map(task).collect()
    }
}
