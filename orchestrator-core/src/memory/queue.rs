//! [`MemoryStore`] as a [`TaskQueue`]: the task table is the queue, as with the database queue.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use crate::clock;
use crate::error::StoreError;
use crate::queue::{Claim, Finish, QueueDepth, TaskQueue, TaskRef};
use crate::store::FinishReport;

#[async_trait]
impl TaskQueue for MemoryStore {
    /// Nothing to do: committed tasks are already visible to `claim`.
    async fn publish(&self, _tasks: &[TaskRef]) -> Result<(), StoreError> {
        Ok(())
    }

    /// Claims up to `max` due tasks (priority desc, `run_at` asc, row id asc) under one lock.
    async fn claim(
        &self,
        worker: &str,
        max: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>, StoreError> {
        let lease_until = clock::add(now, lease);
        let mut state = self.lock();
        let due = state.due(now, max);
        Ok(due
            .into_iter()
            .filter_map(|id| state.start(id, worker, lease_until, now))
            .collect())
    }

    async fn finish(
        &self,
        claim: &Claim,
        finish: Finish,
        now: DateTime<Utc>,
    ) -> Result<FinishReport, StoreError> {
        self.lock().finish(claim, finish, now)
    }

    async fn extend_lease(
        &self,
        claim: &Claim,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Ok(self.lock().extend(claim, clock::add(now, lease)))
    }

    /// [`TaskStore::expire_leases`](crate::store::TaskStore::expire_leases); counts the tasks made
    /// runnable again (not those that failed for good).
    async fn requeue_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(self.lock().expire(now).len() as u64)
    }

    async fn depth(&self, now: DateTime<Utc>) -> Result<QueueDepth, StoreError> {
        Ok(self.lock().depth(now))
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
