//! [`SubmitStore`] for [`SqlStore`]: tasks with no event (`postgres/submit.rs`,
//! `sqlite/submit.rs`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::SubmitStore;
use orchestrator_core::task::NewTask;

use crate::SqlStore;
use crate::any::both;

#[async_trait]
impl SubmitStore for SqlStore {
    async fn submit_task(&self, task: NewTask, now: DateTime<Utc>) -> Result<(), StoreError> {
        both!(self, s => s.submit_task(task, now).await)
    }
}
