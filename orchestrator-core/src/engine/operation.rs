//! [`OperationRunner`]: works through stored bulk operations
//! ([`crate::store::operation`]) in batches, beside the workers.
//!
//! It claims one operation at a time with a lease (so several worker processes share the
//! operations, and one that dies mid-operation is taken over when its lease runs out), then
//! runs batches until the operation is completed, cancelled or taken away:
//! - retry: [`OperationStore::retry_batch`] retries a batch of tasks in one store step, and the
//!   runner publishes them to the queue (a failed publish is left to the queue's sweeper);
//! - reprocess: each event of [`OperationStore::next_events`] goes through
//!   [`Ingestor::reprocess`], the same path as a single reprocess (open tasks: skipped, never a
//!   409 for the whole operation; a head SHA that already has an agent run gets none unless the
//!   operation was forced), then [`OperationStore::record_progress`] records the batch.
//!
//! The receiver never waits for any of this: the HTTP route only stores the operation.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::engine::{Ingestor, ReprocessError, ReprocessOptions};
use crate::error::StoreError;
use crate::queue::TaskQueue;
use crate::store::ReprocessOutcome;
use crate::store::operation::{Operation, OperationKind, OperationStore, Progress};

/// Settings of an [`OperationRunner`].
#[derive(Debug, Clone)]
pub struct OperationRunnerConfig {
    /// This runner's name in the operation's `lease_owner`.
    pub worker_id: String,
    /// Rows per batch (one store step for retries).
    pub batch_size: u32,
    /// How long a claim holds an operation without progress before another runner may take it.
    pub lease: Duration,
}

impl Default for OperationRunnerConfig {
    fn default() -> Self {
        Self {
            worker_id: format!("operations-{}", uuid::Uuid::now_v7()),
            batch_size: 1000,
            lease: Duration::from_secs(60),
        }
    }
}

/// Runs stored operations (see the module documentation).
pub struct OperationRunner {
    store: Arc<dyn OperationStore>,
    ingestor: Arc<Ingestor>,
    queue: Arc<dyn TaskQueue>,
    clock: Arc<dyn Clock>,
    config: OperationRunnerConfig,
}

impl std::fmt::Debug for OperationRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperationRunner")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl OperationRunner {
    /// A runner over the operation store, the ingestor (reprocess) and the queue (retries).
    pub fn new(
        store: Arc<dyn OperationStore>,
        ingestor: Arc<Ingestor>,
        queue: Arc<dyn TaskQueue>,
        clock: Arc<dyn Clock>,
        config: OperationRunnerConfig,
    ) -> Self {
        Self {
            store,
            ingestor,
            queue,
            clock,
            config,
        }
    }

    fn lease_until(&self) -> chrono::DateTime<chrono::Utc> {
        let lease = chrono::Duration::from_std(self.config.lease)
            .unwrap_or_else(|_| chrono::Duration::seconds(60));
        self.clock.now() + lease
    }

    /// Claims one operation and runs it to its end (or until it is cancelled or taken away).
    /// `Ok(false)` when no operation was waiting.
    pub async fn run_one(&self) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let Some(op) = self
            .store
            .claim_operation(&self.config.worker_id, self.lease_until(), now)
            .await?
        else {
            return Ok(false);
        };
        tracing::info!(operation_id = %op.id, kind = op.kind.as_str(), matched = op.matched, "operation started");
        while self.run_batch(&op).await? {}
        tracing::info!(operation_id = %op.id, "operation stopped");
        Ok(true)
    }

    /// One batch of `op`; true when there is more to do.
    pub async fn run_batch(&self, op: &Operation) -> Result<bool, StoreError> {
        match op.kind {
            OperationKind::RetryTasks => self.retry_batch(op).await,
            OperationKind::ReprocessEvents => self.reprocess_batch(op).await,
        }
    }

    async fn retry_batch(&self, op: &Operation) -> Result<bool, StoreError> {
        let batch = self
            .store
            .retry_batch(
                op.id,
                &self.config.worker_id,
                self.config.batch_size,
                self.lease_until(),
                self.clock.now(),
            )
            .await?;
        if !batch.retried.is_empty()
            && let Err(err) = self.queue.publish(&batch.retried).await
        {
            tracing::warn!(operation_id = %op.id, error = %err, "publishing retried tasks failed; the sweeper will publish them");
        }
        Ok(batch.more)
    }

    async fn reprocess_batch(&self, op: &Operation) -> Result<bool, StoreError> {
        // The cursor moves with each recorded batch: read it back.
        let Some(current) = self.store.get_operation(op.id).await? else {
            return Ok(false);
        };
        let ids = self
            .store
            .next_events(&current, self.config.batch_size)
            .await?;
        let mut progress = Progress {
            cursor: current.cursor,
            finished: ids.len() < self.config.batch_size as usize,
            ..Progress::default()
        };
        let options = ReprocessOptions { force: op.force };
        for id in ids {
            match self.ingestor.reprocess(id, options).await {
                Ok(ReprocessOutcome::Reprocessed { .. }) => progress.done += 1,
                Ok(ReprocessOutcome::Busy { .. } | ReprocessOutcome::NotFound) => {
                    progress.skipped += 1;
                }
                Err(ReprocessError::Unparsable { .. }) => progress.failed += 1,
                Err(ReprocessError::Store(err)) => {
                    // Record what this batch did, and let the next claim go on from there.
                    self.record(op, progress).await?;
                    return Err(err);
                }
            }
            progress.cursor = id;
        }
        let held = self.record(op, progress).await?;
        Ok(held && !progress.finished)
    }

    async fn record(&self, op: &Operation, progress: Progress) -> Result<bool, StoreError> {
        self.store
            .record_progress(
                op.id,
                &self.config.worker_id,
                progress,
                self.lease_until(),
                self.clock.now(),
            )
            .await
    }
}
