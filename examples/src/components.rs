//! [`Components`]: what the builder assembled, handed to handler factories
//! ([`handler_with`](crate::OrchestratorBuilder::handler_with)) and background services
//! ([`BackgroundService`](crate::BackgroundService)).

use std::any::Any;
use std::sync::Arc;

use orchestrator_axum::Metrics;
use orchestrator_codegen::{CodegenClient, GitHubClient};
use orchestrator_core::breaker::BreakerSet;
use orchestrator_core::budget::AgentBudget;
use orchestrator_core::clock::Clock;
use orchestrator_core::engine::Ingestor;
use orchestrator_core::observe::Observer;
use orchestrator_core::queue::TaskQueue;
use orchestrator_core::recovery::Reconciler;
use orchestrator_core::store::recovery::RecoveryStore;
use orchestrator_core::store::{AttemptStore, EventStore, TaskStore};
use orchestrator_redis::RedisConnection;

use crate::config::Config;
use crate::role::Role;
use crate::storage::Stores;

/// The built parts of an orchestrator. Cheap to clone (every part is shared).
#[derive(Clone)]
pub struct Components {
    pub(crate) config: Arc<Config>,
    pub(crate) role: Role,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) stores: Stores,
    pub(crate) queue: Arc<dyn TaskQueue>,
    pub(crate) redis: Option<RedisConnection>,
    pub(crate) ingestor: Arc<Ingestor>,
    pub(crate) github: Arc<GitHubClient>,
    pub(crate) codegen: Arc<CodegenClient>,
    pub(crate) breakers: BreakerSet,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) observer: Arc<dyn Observer>,
    /// The agent budget Codegen run creations take slots from (in Redis when configured, so
    /// every worker shares it; else this process's), also shown by `/health`.
    pub(crate) agent_budget: Arc<dyn AgentBudget>,
    /// Reconciles with GitHub's delivery log (set by the builder once the rest is built).
    pub(crate) reconciler: Option<Arc<Reconciler>>,
}

impl std::fmt::Debug for Components {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Components")
            .field("role", &self.role)
            .field("database", &self.stores.database())
            .field("queue", &self.queue.backend())
            .finish_non_exhaustive()
    }
}

impl Components {
    /// The configuration it was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The role of this process.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The injected clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The event store (the store itself, not the group commit in front of ingest).
    pub fn events(&self) -> &Arc<dyn EventStore> {
        &self.stores.events
    }

    /// The task store.
    pub fn tasks(&self) -> &Arc<dyn TaskStore> {
        &self.stores.tasks
    }

    /// The attempt store: claims, finishes and leases (what queues and workers drive).
    pub fn attempts(&self) -> &Arc<dyn AttemptStore> {
        &self.stores.attempts
    }

    /// The agent-run ledger (at most one Codegen run per creation; one per PR head SHA).
    pub fn agent_runs(&self) -> &Arc<dyn orchestrator_core::store::agent_run::AgentRunStore> {
        &self.stores.agent_runs
    }

    /// Bulk operations (retry / reprocess by filter), run by the `operations` service.
    pub fn operations(&self) -> &Arc<dyn orchestrator_core::store::operation::OperationStore> {
        &self.stores.operations
    }

    /// Recovery runs (reconciling with GitHub's delivery log).
    pub fn recovery(&self) -> &Arc<dyn RecoveryStore> {
        &self.stores.recovery
    }

    /// The reconciler with GitHub's delivery log (runs, one runner at a time).
    pub fn reconciler(&self) -> Option<&Arc<Reconciler>> {
        self.reconciler.as_ref()
    }

    /// The reporter's cursor and records (reporting back on the pull request).
    pub fn reports(&self) -> &Arc<dyn orchestrator_core::store::report::ReportStore> {
        &self.stores.reports
    }

    /// The task queue (the database's, or Redis Streams).
    pub fn queue(&self) -> &Arc<dyn TaskQueue> {
        &self.queue
    }

    /// The store as its own type, for a service that needs more than the store traits (e.g.
    /// `store_as::<SqlStore>()` for a table of its own); `None` when the store is another type.
    pub fn store_as<S: Any + Send + Sync>(&self) -> Option<Arc<S>> {
        self.stores.any.clone().downcast::<S>().ok()
    }

    /// The Redis connection, when Redis is configured (shared by the queue and the guards).
    pub fn redis(&self) -> Option<&RedisConnection> {
        self.redis.as_ref()
    }

    /// The ingest service: the one way a delivery becomes stored rows and tasks.
    pub fn ingestor(&self) -> &Arc<Ingestor> {
        &self.ingestor
    }

    /// The GitHub client (credentials, quota floor, breaker); [`GitHubClient::request`] makes
    /// any REST call.
    pub fn github(&self) -> &Arc<GitHubClient> {
        &self.github
    }

    /// The agent budget of Codegen run creations (shared through Redis when configured).
    pub fn agent_budget(&self) -> &Arc<dyn AgentBudget> {
        &self.agent_budget
    }

    /// The Codegen client.
    pub fn codegen(&self) -> &Arc<CodegenClient> {
        &self.codegen
    }

    /// The circuit breakers `/health` and `/metrics` show; add a service's own here.
    pub fn breakers(&self) -> &BreakerSet {
        &self.breakers
    }

    /// The Prometheus metrics served at `/metrics`.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Where the core reports deliveries, attempts and calls (the metrics, or nothing when
    /// `ENABLE_METRICS=false`).
    pub fn observer(&self) -> &Arc<dyn Observer> {
        &self.observer
    }
}
