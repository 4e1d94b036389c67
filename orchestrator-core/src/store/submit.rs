//! [`SubmitStore`]: tasks that come from no delivery — an operator's or a schedule's, such as
//! the `cleanup` task ([`crate::cleanup`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::StoreError;
use crate::task::NewTask;

/// Commits tasks that belong to no webhook event.
#[async_trait]
pub trait SubmitStore: Send + Sync + 'static {
    /// Commits `task` as a pending task with no event (created at `now`, due at its `run_at`).
    /// A queue that delivers ids (Redis) must still be told ([`TaskQueue::publish`]).
    ///
    /// [`TaskQueue::publish`]: crate::queue::TaskQueue::publish
    async fn submit_task(&self, task: NewTask, now: DateTime<Utc>) -> Result<(), StoreError>;
}
