//! [`SubmitStore`] on PostgreSQL: one `INSERT` of a task with no event.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::SubmitStore;
use orchestrator_core::task::NewTask;

use super::PgStore;
use super::rows::{bind_one_task, insert_one_task};
use crate::error::store_error;

/// The task's 13 columns as parameters 1 to 13, `now` as 14, no event.
const SUBMIT: &str = insert_one_task!("NULL::int8", "$14::timestamptz", "(SELECT 1) AS one");

#[async_trait]
impl SubmitStore for PgStore {
    async fn submit_task(&self, task: NewTask, now: DateTime<Utc>) -> Result<(), StoreError> {
        bind_one_task(sqlx::query(SUBMIT), &task)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
