//! [`SubmitStore`] on SQLite: a task with no event, in one write transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::SubmitStore;
use orchestrator_core::task::NewTask;

use super::SqliteStore;
use super::rows::insert_task;
use crate::error::store_error;

#[async_trait]
impl SubmitStore for SqliteStore {
    async fn submit_task(&self, task: NewTask, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        insert_task(&mut tx, &task, None, None, now).await?;
        tx.commit().await.map_err(store_error)?;
        self.committed();
        Ok(())
    }
}
