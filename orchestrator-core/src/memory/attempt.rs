//! [`MemoryStore`] as an [`AttemptStore`]: claims, leases and finishes under the one lock.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::MemoryStore;
use crate::error::StoreError;
use crate::store::{AttemptStore, Claim, ExternalRun, Finish, FinishReport, QueueDepth};

#[async_trait]
impl AttemptStore for MemoryStore {
    async fn record_external_run(
        &self,
        task_id: Uuid,
        run: &ExternalRun,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.lock()
            .record_run(task_id, &run.id, run.url.as_deref(), now)
    }

    /// Picks and starts the due tasks under one lock, so no other call sees half a claim.
    async fn claim_due(
        &self,
        worker: &str,
        max: usize,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>, StoreError> {
        let mut state = self.lock();
        let due = state.due(now, max);
        Ok(due
            .into_iter()
            .filter_map(|id| state.start(id, worker, lease_until, now))
            .collect())
    }

    async fn start_attempt(
        &self,
        task_id: Uuid,
        worker: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Claim>, StoreError> {
        Ok(self.lock().start(task_id, worker, lease_until, now))
    }

    async fn finish_attempt(
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
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Ok(self.lock().extend(claim, lease_until))
    }

    async fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError> {
        Ok(self.lock().expire(now))
    }

    async fn stale_runnable(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError> {
        Ok(self.lock().stale_runnable(stale_before, now, limit))
    }

    async fn queue_depth(&self, now: DateTime<Utc>) -> Result<QueueDepth, StoreError> {
        Ok(self.lock().depth(now))
    }

    fn queue_name(&self) -> &'static str {
        "memory"
    }
}
