//! The bulk-operation runner as a background service (worker role): it claims stored
//! operations (`POST /api/v1/tasks/retry`, `POST /api/v1/webhooks/events/reprocess`) one at a
//! time and runs them in batches ([`OperationRunner`]), so the receiver never waits for them.
//! Operations survive restarts: one cut off by a shutdown or a crash is taken over, from its
//! last recorded batch, once its lease ([`LEASE`]) has run out.

use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::engine::{OperationRunner, OperationRunnerConfig};
use tokio_util::sync::CancellationToken;

use crate::background::BackgroundService;
use crate::components::Components;

/// Rows per batch: one transaction per batch for retries.
pub(crate) const BATCH_SIZE: u32 = 500;

/// How long a runner holds an operation without recording a batch.
pub(crate) const LEASE: Duration = Duration::from_secs(60);

/// How often an idle runner looks for a new operation.
const POLL: Duration = Duration::from_secs(1);

/// Runs bulk operations in the worker role.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OperationService;

#[async_trait]
impl BackgroundService for OperationService {
    fn name(&self) -> &str {
        "operations"
    }

    async fn run(&self, components: Components, shutdown: CancellationToken) {
        let runner = OperationRunner::new(
            components.stores.operations.clone(),
            components.ingestor.clone(),
            components.queue.clone(),
            components.clock.clone(),
            OperationRunnerConfig {
                worker_id: format!("{}-operations", components.config.worker.worker_id),
                batch_size: BATCH_SIZE,
                lease: LEASE,
            },
        );
        loop {
            let idle = match shutdown.run_until_cancelled(runner.run_one()).await {
                None => return,
                Some(Ok(ran)) => !ran,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "bulk operation interrupted; it goes on from its last batch");
                    true
                }
            };
            if idle
                && shutdown
                    .run_until_cancelled(tokio::time::sleep(POLL))
                    .await
                    .is_none()
            {
                return;
            }
        }
    }
}
