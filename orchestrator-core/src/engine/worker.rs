//! The worker: claim -> run the handler -> record the execution -> complete / retry / fail.
//!
//! PLACEHOLDER API (being filled in).

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::error::StoreError;
use crate::handler::HandlerRegistry;
use crate::observe::{NoopObserver, Observer};
use crate::queue::TaskQueue;
use crate::retry::RetryPolicy;
use crate::store::TaskStore;
use crate::task::Task;

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Identifies this worker in leases and executions.
    pub worker_id: String,
    /// Tasks run at once.
    pub concurrency: usize,
    /// Lease per claim; extended while a handler runs.
    pub lease: Duration,
    /// Wait between claims when the queue is empty.
    pub poll_interval: Duration,
    /// At shutdown, how long running tasks may finish before they are released.
    pub shutdown_grace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            worker_id: format!("worker-{}", uuid::Uuid::new_v4()),
            concurrency: 4,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_millis(200),
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// Makes the span an execution runs in (the server links it to the task's stored trace).
pub type SpanFactory = Arc<dyn Fn(&Task) -> tracing::Span + Send + Sync>;

/// Runs tasks.
pub struct Worker {
    queue: Arc<dyn TaskQueue>,
    store: Arc<dyn TaskStore>,
    registry: Arc<HandlerRegistry>,
    clock: Arc<dyn Clock>,
    config: WorkerConfig,
    retry: RetryPolicy,
    observer: Arc<dyn Observer>,
    span_factory: Option<SpanFactory>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker over `queue` (claims) and `store` (progress records).
    pub fn new(
        queue: Arc<dyn TaskQueue>,
        store: Arc<dyn TaskStore>,
        registry: HandlerRegistry,
        clock: Arc<dyn Clock>,
        config: WorkerConfig,
    ) -> Self {
        Self {
            queue,
            store,
            registry: Arc::new(registry),
            clock,
            config,
            retry: RetryPolicy::default(),
            observer: Arc::new(NoopObserver),
            span_factory: None,
        }
    }

    /// Sets the retry policy.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Reports attempts to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// Runs each execution inside the span `factory` makes.
    pub fn with_span_factory(mut self, factory: SpanFactory) -> Self {
        self.span_factory = Some(factory);
        self
    }

    /// Claims up to `concurrency` due tasks, runs them to the end of their attempt and records
    /// the outcomes. Returns how many ran.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let _ = (&self.queue, &self.store, &self.registry, &self.clock, &self.retry, &self.observer, &self.span_factory);
        Ok(0)
    }

    /// Runs until `shutdown` resolves, then lets running tasks finish within the grace period
    /// and releases the rest.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send) -> Result<(), StoreError> {
        shutdown.await;
        Ok(())
    }
}
