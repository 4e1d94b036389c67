//! The shared state of every route: the ingestor, the stores, the queue, the clock, the
//! configuration, metrics, breakers and health checks.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use orchestrator_core::breaker::BreakerSet;
use orchestrator_core::budget::AgentBudget;
use orchestrator_core::clock::Clock;
use orchestrator_core::engine::Ingestor;
use orchestrator_core::guard::RateLimiter;
use orchestrator_core::queue::{StoreQueue, TaskQueue};
use orchestrator_core::recovery::Reconciler;
use orchestrator_core::store::browse::BrowseStore;
use orchestrator_core::store::cancel::CancelStore;
use orchestrator_core::store::operation::OperationStore;
use orchestrator_core::store::{AttemptStore, EventStore, PauseStore, SubmitStore, TaskStore};
use orchestrator_core::task::TaskType;

use crate::budget::BodyBudget;
use crate::config::ApiConfig;
use crate::figures::Figures;
use crate::health::HealthCheck;
use crate::metrics::Metrics;
use crate::rate_limit::RouteLimit;

/// What the routes share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    ingestor: Arc<Ingestor>,
    events: Arc<dyn EventStore>,
    tasks: Arc<dyn TaskStore>,
    queue: Arc<dyn TaskQueue>,
    clock: Arc<dyn Clock>,
    config: ApiConfig,
    metrics: Option<Arc<Metrics>>,
    breakers: BreakerSet,
    health_checks: Vec<Arc<dyn HealthCheck>>,
    operations: Option<Arc<dyn OperationStore>>,
    browse: Option<Arc<dyn BrowseStore>>,
    webhook_limiter: Option<RouteLimit>,
    api_limiter: Option<RouteLimit>,
    body_budget: BodyBudget,
    started_at: DateTime<Utc>,
    cancel: Option<Arc<dyn CancelStore>>,
    reconciler: Option<Arc<Reconciler>>,
    /// Tasks from no delivery (the `cleanup` task); `None`: those routes answer 503.
    submit: Option<Arc<dyn SubmitStore>>,
    /// Operators' pauses and the task types a pause may name; `None`: the pause routes answer
    /// 503 and no task shows as paused.
    pauses: Option<(Arc<dyn PauseStore>, Vec<TaskType>)>,
    /// The aggregate behind the figures routes and the console's overview, shared by all.
    figures: Figures,
    /// The agent budget whose state `/health`, `/metrics` and the console show.
    agent_budget: Option<Arc<dyn AgentBudget>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.inner.config)
            .field("queue", &self.inner.queue.backend())
            .finish_non_exhaustive()
    }
}

/// Builds an [`AppState`].
pub struct AppStateBuilder {
    ingestor: Arc<Ingestor>,
    events: Arc<dyn EventStore>,
    tasks: Arc<dyn TaskStore>,
    queue: Arc<dyn TaskQueue>,
    clock: Arc<dyn Clock>,
    config: ApiConfig,
    metrics: Option<Arc<Metrics>>,
    /// Set by [`AppStateBuilder::without_metrics`].
    metrics_off: bool,
    breakers: BreakerSet,
    health_checks: Vec<Arc<dyn HealthCheck>>,
    shared_rate_limiter: Option<Arc<dyn RateLimiter>>,
    cancel: Option<Arc<dyn CancelStore>>,
    reconciler: Option<Arc<Reconciler>>,
    submit: Option<Arc<dyn SubmitStore>>,
    operations: Option<Arc<dyn OperationStore>>,
    pauses: Option<(Arc<dyn PauseStore>, Vec<TaskType>)>,
    browse: Option<Arc<dyn BrowseStore>>,
    agent_budget: Option<Arc<dyn AgentBudget>>,
}

impl std::fmt::Debug for AppStateBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppStateBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AppStateBuilder {
    /// Sets the configuration (default: [`ApiConfig::default`], which locks the admin API).
    pub fn config(mut self, config: ApiConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the metrics rendered by `/metrics` (give the same instance to the ingestor and
    /// the workers as their observer). Default: a fresh registry.
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// No metrics at all (the server's `ENABLE_METRICS=false`): `/metrics` answers 404 with
    /// the error body, and neither `/health` nor the routes update any gauge or counter.
    pub fn without_metrics(mut self) -> Self {
        self.metrics = None;
        self.metrics_off = true;
        self
    }

    /// Sets the circuit breakers shown by `/health` and `/metrics`.
    pub fn breakers(mut self, breakers: BreakerSet) -> Self {
        self.breakers = breakers;
        self
    }

    /// Adds a check to `/health`.
    pub fn health_check(mut self, check: Arc<dyn HealthCheck>) -> Self {
        self.health_checks.push(check);
        self
    }

    /// Enforces the configured rate limits with `limiter`, shared by every API instance (e.g.
    /// the Redis limiter), instead of in-process buckets. Same keys (the client address), same
    /// quotas, same 429 answer; when `limiter` fails, the in-process buckets decide instead.
    pub fn shared_rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.shared_rate_limiter = Some(limiter);
        self
    }

    /// Lets `POST /api/v1/tasks/{task_id}/cancel` cancel tasks in `store` (without it the route
    /// answers 503).
    pub fn cancel_store(mut self, store: Arc<dyn CancelStore>) -> Self {
        self.cancel = Some(store);
        self
    }

    /// Serves the recovery routes (`/api/v1/admin/recover`) with `reconciler`; without it
    /// they answer 503.
    pub fn reconciler(mut self, reconciler: Arc<Reconciler>) -> Self {
        self.reconciler = Some(reconciler);
        self
    }

    /// Commits the tasks that come from no delivery (`POST /api/v1/admin/cleanup` submits a
    /// `cleanup` task) with `store`; without it that route answers 503.
    pub fn submit_store(mut self, store: Arc<dyn SubmitStore>) -> Self {
        self.submit = Some(store);
        self
    }

    /// Enables bulk operations (`/api/v1/tasks/retry`, `/api/v1/webhooks/events/reprocess`,
    /// `/api/v1/operations`) on `store`; without it those routes answer 503.
    pub fn operations(mut self, store: Arc<dyn OperationStore>) -> Self {
        self.operations = Some(store);
        self
    }

    /// Serves `POST /api/v1/admin/pause` / `resume` and `GET /api/v1/admin/pauses` with
    /// `store`; a pause may name only the task types of `task_types` (the registered handlers).
    pub fn pause_store(mut self, store: Arc<dyn PauseStore>, task_types: Vec<TaskType>) -> Self {
        self.pauses = Some((store, task_types));
        self
    }

    /// Sets the keyset-paged lists the operator console reads (without it the console's lists
    /// answer 503).
    pub fn browse(mut self, browse: Arc<dyn BrowseStore>) -> Self {
        self.browse = Some(browse);
        self
    }

    /// Shows `budget`'s state in `/health` (`agent_budget`), `/metrics` and the console (give
    /// the instance the `codegen_trigger` handler takes its slots from).
    pub fn agent_budget(mut self, budget: Arc<dyn AgentBudget>) -> Self {
        self.agent_budget = Some(budget);
        self
    }

    /// The state.
    pub fn build(self) -> AppState {
        let metrics = match self.metrics_off {
            true => None,
            false => self.metrics.or_else(|| Metrics::new().ok().map(Arc::new)),
        };
        let started_at = self.clock.now();
        AppState {
            inner: Arc::new(Inner {
                webhook_limiter: RouteLimit::new(
                    "webhook",
                    self.config.rate_limits.webhook,
                    self.shared_rate_limiter.clone(),
                ),
                api_limiter: RouteLimit::new(
                    "api",
                    self.config.rate_limits.api,
                    self.shared_rate_limiter,
                ),
                body_budget: BodyBudget::new(self.config.max_buffered_body_bytes),
                ingestor: self.ingestor,
                events: self.events,
                tasks: self.tasks,
                queue: self.queue,
                clock: self.clock,
                config: self.config,
                metrics,
                breakers: self.breakers,
                health_checks: self.health_checks,
                operations: self.operations,
                browse: self.browse,
                started_at,
                cancel: self.cancel,
                reconciler: self.reconciler,
                submit: self.submit,
                pauses: self.pauses,
                figures: Figures::default(),
                agent_budget: self.agent_budget,
            }),
        }
    }
}

impl AppState {
    /// A builder over the ingestor and the backends.
    pub fn builder(
        ingestor: Arc<Ingestor>,
        events: Arc<dyn EventStore>,
        tasks: Arc<dyn TaskStore>,
        queue: Arc<dyn TaskQueue>,
        clock: Arc<dyn Clock>,
    ) -> AppStateBuilder {
        AppStateBuilder {
            ingestor,
            events,
            tasks,
            queue,
            clock,
            config: ApiConfig::default(),
            metrics: None,
            metrics_off: false,
            breakers: BreakerSet::new(),
            health_checks: Vec::new(),
            shared_rate_limiter: None,
            cancel: None,
            reconciler: None,
            submit: None,
            operations: None,
            pauses: None,
            browse: None,
            agent_budget: None,
        }
    }

    /// A builder over one backend that is event store, task store and attempt store at once
    /// (the in-memory store, the SQL stores), with the database queue over its task table
    /// ([`StoreQueue`]).
    pub fn builder_for<S>(
        ingestor: Arc<Ingestor>,
        store: Arc<S>,
        clock: Arc<dyn Clock>,
    ) -> AppStateBuilder
    where
        S: EventStore + TaskStore + AttemptStore,
    {
        let queue = Arc::new(StoreQueue::new(store.clone()));
        Self::builder(ingestor, store.clone(), store, queue, clock)
    }

    /// The agent budget, when one is shown.
    pub fn agent_budget(&self) -> Option<&dyn AgentBudget> {
        self.inner.agent_budget.as_deref()
    }

    /// The reconciler with GitHub's delivery log, when configured.
    pub fn reconciler(&self) -> Option<&Arc<Reconciler>> {
        self.inner.reconciler.as_ref()
    }

    /// The ingestor.
    pub fn ingestor(&self) -> &Ingestor {
        &self.inner.ingestor
    }

    /// The event store.
    pub fn events(&self) -> &dyn EventStore {
        self.inner.events.as_ref()
    }

    /// The task store.
    pub fn tasks(&self) -> &dyn TaskStore {
        self.inner.tasks.as_ref()
    }

    /// The task queue.
    pub fn queue(&self) -> &dyn TaskQueue {
        self.inner.queue.as_ref()
    }

    /// The pauses and the task types a pause may name, when configured.
    pub fn pauses(&self) -> Option<(&dyn PauseStore, &[TaskType])> {
        self.inner
            .pauses
            .as_ref()
            .map(|(store, types)| (store.as_ref(), types.as_slice()))
    }

    /// The store of tasks from no delivery, when configured.
    pub fn submit(&self) -> Option<&dyn SubmitStore> {
        self.inner.submit.as_deref()
    }

    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    /// The metrics, unless the state was built [`without_metrics`](AppStateBuilder::without_metrics).
    pub fn metrics(&self) -> Option<&Metrics> {
        self.inner.metrics.as_deref()
    }

    /// The circuit breakers.
    pub fn breakers(&self) -> &BreakerSet {
        &self.inner.breakers
    }

    /// The budget of request-body bytes held in memory (`ApiConfig::max_buffered_body_bytes`).
    pub fn body_budget(&self) -> &BodyBudget {
        &self.inner.body_budget
    }

    /// The bulk-operation store, when configured.
    pub fn operations(&self) -> Option<&dyn OperationStore> {
        self.inner.operations.as_deref()
    }

    /// The keyset-paged lists, when configured.
    pub fn browse(&self) -> Option<&dyn BrowseStore> {
        self.inner.browse.as_deref()
    }

    pub(crate) fn health_checks(&self) -> &[Arc<dyn HealthCheck>] {
        &self.inner.health_checks
    }

    pub(crate) fn webhook_limiter(&self) -> Option<&RouteLimit> {
        self.inner.webhook_limiter.as_ref()
    }

    pub(crate) fn api_limiter(&self) -> Option<&RouteLimit> {
        self.inner.api_limiter.as_ref()
    }

    /// The shared aggregate of the figures routes and the console's overview.
    pub(crate) fn figures(&self) -> &Figures {
        &self.inner.figures
    }

    pub(crate) fn started_at(&self) -> DateTime<Utc> {
        self.inner.started_at
    }

    /// The cancel capability, when configured ([`AppStateBuilder::cancel_store`]).
    pub fn cancel_store(&self) -> Option<&dyn CancelStore> {
        self.inner.cancel.as_deref()
    }
}
