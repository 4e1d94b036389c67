//! The worker: claim -> run the handler -> record the execution -> complete / retry / fail.
//!
//! Retries are rows with a due time, never sleeps: a failed attempt is recorded as retrying with
//! `run_at = now + backoff` and claimed again when due, so it survives restarts. Each attempt
//! runs in its own tokio task (a panicking handler is a retryable failure, not a dead worker),
//! renews its lease every `lease / 3`, and runs inside a `task` tracing span.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::attempt::Runner;
use crate::clock::Clock;
use crate::error::StoreError;
use crate::handler::HandlerRegistry;
use crate::observe::{NoopObserver, Observer};
use crate::queue::TaskQueue;
use crate::retry::RetryPolicy;
use crate::store::{AttemptStore, EventStore};
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
    store: Arc<dyn AttemptStore>,
    events: Option<Arc<dyn EventStore>>,
    registry: Arc<HandlerRegistry>,
    clock: Arc<dyn Clock>,
    config: WorkerConfig,
    retry: RetryPolicy,
    observer: Arc<dyn Observer>,
    span_factory: Option<SpanFactory>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker over `queue` (claims) and `store` (progress records).
    pub fn new(
        queue: Arc<dyn TaskQueue>,
        store: Arc<dyn AttemptStore>,
        registry: HandlerRegistry,
        clock: Arc<dyn Clock>,
        config: WorkerConfig,
    ) -> Self {
        Self {
            queue,
            store,
            events: None,
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

    /// Lets handlers read the delivery of their task ([`TaskContext::event`],
    /// [`TaskContext::payload`]) from `events`.
    ///
    /// [`TaskContext::event`]: crate::handler::TaskContext::event
    /// [`TaskContext::payload`]: crate::handler::TaskContext::payload
    pub fn with_events(mut self, events: Arc<dyn EventStore>) -> Self {
        self.events = Some(events);
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

    fn runner(&self) -> Runner {
        Runner {
            queue: self.queue.clone(),
            store: self.store.clone(),
            events: self.events.clone(),
            registry: self.registry.clone(),
            clock: self.clock.clone(),
            observer: self.observer.clone(),
            span_factory: self.span_factory.clone(),
            retry: self.retry,
            lease: self.config.lease,
        }
    }

    fn concurrency(&self) -> usize {
        self.config.concurrency.max(1)
    }

    /// Claims up to `concurrency` due tasks, runs them to the end of their attempt and records
    /// the outcomes. Returns how many ran.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let claims = self
            .queue
            .claim(
                &self.config.worker_id,
                self.concurrency(),
                self.config.lease,
                self.clock.now(),
            )
            .await?;
        let count = claims.len();
        let runner = self.runner();
        let mut running = JoinSet::new();
        for claim in claims {
            running.spawn(runner.clone().execute(claim, CancellationToken::new()));
        }
        while let Some(joined) = running.join_next().await {
            if let Err(err) = joined {
                tracing::error!(error = %err, "attempt task failed");
            }
        }
        Ok(count)
    }

    /// Runs until `shutdown` resolves, then lets running tasks finish within the grace period
    /// and releases the rest.
    ///
    /// Keeps up to `concurrency` attempts in flight: whenever a slot is free it claims more;
    /// when the queue is empty it waits `poll_interval` (or until an attempt ends). Expired
    /// leases of other (crashed) workers are returned to the queue every `lease / 2`. At
    /// shutdown it stops claiming, waits up to `shutdown_grace`, then stops the remaining
    /// handlers and records their tasks as released (pending, due now, no attempt used). If the
    /// store cannot record that within another `shutdown_grace`, those attempts are dropped and
    /// their tasks come back when their leases expire, so shutdown always ends.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), StoreError> {
        let runner = self.runner();
        let concurrency = self.concurrency();
        let cancel = CancellationToken::new();
        let mut running: JoinSet<()> = JoinSet::new();
        let requeue_every = (self.config.lease / 2).max(self.config.poll_interval);
        let mut next_requeue = tokio::time::Instant::now();
        let mut shutdown = std::pin::pin!(shutdown);
        tracing::info!(worker_id = %self.config.worker_id, concurrency, backend = self.queue.backend(), "worker started");
        loop {
            while let Some(joined) = running.try_join_next() {
                log_join(joined);
            }
            if tokio::time::Instant::now() >= next_requeue {
                next_requeue = tokio::time::Instant::now() + requeue_every;
                match self.queue.requeue_expired(self.clock.now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(requeued = n, "expired leases returned to the queue"),
                    Err(err) => tracing::warn!(error = %err, "returning expired leases failed"),
                }
            }
            let free = concurrency.saturating_sub(running.len());
            if free > 0 {
                match self
                    .queue
                    .claim(
                        &self.config.worker_id,
                        free,
                        self.config.lease,
                        self.clock.now(),
                    )
                    .await
                {
                    Ok(claims) => {
                        for claim in claims {
                            running.spawn(runner.clone().execute(claim, cancel.clone()));
                        }
                    }
                    Err(err) => tracing::warn!(error = %err, "claiming tasks failed"),
                }
            }
            let idle_wait = running.len() < concurrency;
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(joined) = running.join_next(), if !running.is_empty() => log_join(joined),
                () = tokio::time::sleep(self.config.poll_interval), if idle_wait => {}
            }
        }
        tracing::info!(in_flight = running.len(), "worker stopping: no new claims");
        let drained = tokio::time::timeout(self.config.shutdown_grace, async {
            while let Some(joined) = running.join_next().await {
                log_join(joined);
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                in_flight = running.len(),
                "shutdown grace period over: releasing unfinished tasks"
            );
            cancel.cancel();
            // Releasing needs the store; if it does not answer within another grace period,
            // give up on those tasks (their leases expire and they return to the queue) rather
            // than never stopping.
            let released = tokio::time::timeout(self.config.shutdown_grace, async {
                while let Some(joined) = running.join_next().await {
                    log_join(joined);
                }
            })
            .await;
            if released.is_err() {
                tracing::error!(
                    in_flight = running.len(),
                    "releasing tasks timed out; their leases will expire"
                );
                running.abort_all();
                while let Some(joined) = running.join_next().await {
                    if let Err(err) = joined
                        && !err.is_cancelled()
                    {
                        tracing::error!(error = %err, "attempt task failed");
                    }
                }
            }
        }
        tracing::info!("worker stopped");
        Ok(())
    }
}

fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(err) = joined {
        tracing::error!(error = %err, "attempt task failed");
    }
}
