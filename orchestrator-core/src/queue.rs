//! The task queue contract: how workers get tasks and hand them back.
//!
//! Task *state* lives in the [`AttemptStore`]; a queue decides which task a worker gets next.
//! [`StoreQueue`] is the database queue: it claims straight from the task table of any
//! [`AttemptStore`] (the SQL stores, the in-memory store). A broker-backed queue (Redis Streams)
//! delivers task ids and confirms each with
//! [`AttemptStore::start_attempt`], so a message delivered twice never runs a task twice.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::clock;
use crate::error::StoreError;
use crate::store::{AttemptStore, Claim, Finish, FinishReport, QueueDepth};

/// A reference to a committed task, for publishing it to a broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskRef {
    /// The task.
    pub task_id: Uuid,
    /// When it is due.
    pub run_at: DateTime<Utc>,
}

/// Hands tasks to workers.
#[async_trait]
pub trait TaskQueue: Send + Sync + 'static {
    /// Makes tasks that were just committed visible to workers. A database queue needs nothing
    /// (its rows are the queue); a broker publishes them. A failure here loses nothing: the
    /// tasks are in the store and a sweeper publishes them later.
    async fn publish(&self, tasks: &[TaskRef]) -> Result<(), StoreError>;

    /// Takes up to `max` due tasks for `worker`, each with a lease of `lease`.
    async fn claim(
        &self,
        worker: &str,
        max: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>, StoreError>;

    /// Records how an attempt ended and acknowledges the delivery.
    async fn finish(
        &self,
        claim: &Claim,
        finish: Finish,
        now: DateTime<Utc>,
    ) -> Result<FinishReport, StoreError>;

    /// Extends a running claim's lease; false when the claim lost the task.
    async fn extend_lease(
        &self,
        claim: &Claim,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Returns tasks whose worker's lease ran out to the queue; how many.
    async fn requeue_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Queue depth, for metrics and health.
    async fn depth(&self, now: DateTime<Utc>) -> Result<QueueDepth, StoreError>;

    /// The queue's name for health and logs (`database`, `redis`, `memory`).
    fn backend(&self) -> &'static str;
}

/// The database queue: the task table of an [`AttemptStore`] is the queue. Claims go through
/// [`AttemptStore::claim_due`], so what is committed is claimable at once and nothing needs
/// publishing; a crashed worker's tasks come back through lease expiry.
pub struct StoreQueue<S: ?Sized> {
    store: Arc<S>,
}

impl<S: ?Sized> StoreQueue<S> {
    /// The queue over `store`'s task table.
    pub fn new(store: Arc<S>) -> Self {
        Self { store }
    }

    /// The store it claims from.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }
}

impl<S: ?Sized> Clone for StoreQueue<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
        }
    }
}

impl<S: ?Sized> std::fmt::Debug for StoreQueue<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreQueue").finish_non_exhaustive()
    }
}

#[async_trait]
impl<S: AttemptStore + ?Sized> TaskQueue for StoreQueue<S> {
    /// Nothing to do: committed tasks are already visible to `claim`.
    async fn publish(&self, _tasks: &[TaskRef]) -> Result<(), StoreError> {
        Ok(())
    }

    async fn claim(
        &self,
        worker: &str,
        max: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        self.store
            .claim_due(worker, max, clock::add(now, lease), now)
            .await
    }

    async fn finish(
        &self,
        claim: &Claim,
        finish: Finish,
        now: DateTime<Utc>,
    ) -> Result<FinishReport, StoreError> {
        self.store.finish_attempt(claim, finish, now).await
    }

    async fn extend_lease(
        &self,
        claim: &Claim,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.store.extend_lease(claim, clock::add(now, lease)).await
    }

    /// [`AttemptStore::expire_leases`]; counts the tasks made runnable again (not those that
    /// failed for good).
    async fn requeue_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(self.store.expire_leases(now).await?.len() as u64)
    }

    async fn depth(&self, now: DateTime<Utc>) -> Result<QueueDepth, StoreError> {
        self.store.queue_depth(now).await
    }

    fn backend(&self) -> &'static str {
        self.store.queue_name()
    }
}
