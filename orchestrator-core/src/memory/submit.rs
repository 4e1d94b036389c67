//! [`SubmitStore`] for [`MemoryStore`]: a task with no event, inserted under the one lock.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use crate::error::StoreError;
use crate::store::SubmitStore;
use crate::task::NewTask;

#[async_trait]
impl SubmitStore for MemoryStore {
    async fn submit_task(&self, task: NewTask, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.lock().insert_task(task, None, None, now);
        Ok(())
    }
}
