//! [`OrchestratorBuilder`]: configures an orchestrator and assembles it in named steps.
//!
//! The steps of [`build`](OrchestratorBuilder::build), in order: metrics and the observer ->
//! the store (`storage.rs`: the database of `DATABASE_URL` or the embedder's store) -> the task queue (the store's own, or Redis Streams) -> the GitHub and Codegen
//! clients with their breakers -> the ingest service (verifier, rules, group commit, replay
//! guard) -> the HTTP state (API settings, health checks, shared rate limiter) -> the handler
//! registry -> the background services.

use std::sync::Arc;

use orchestrator_axum::{HealthCheck, Metrics, RateLimits};
use orchestrator_core::budget::{AgentBudget, MemoryAgentBudget};
use orchestrator_core::clock::{Clock, SystemClock};
use orchestrator_core::engine::SpanFactory;
use orchestrator_core::handler::TaskHandler;
use orchestrator_core::observe::{NoopObserver, Observer};
use orchestrator_core::routing::{Router, Rule};
use orchestrator_core::secret::Secret;
use orchestrator_core::task::TaskType;
use orchestrator_redis::{RedisAgentBudget, RedisConfig, RedisConnection};

use crate::background::{self, BackgroundService};
use crate::components::Components;
use crate::config::{Config, ConfigError, Purpose};
use crate::error::ServerError;
use crate::orchestrator::Orchestrator;
use crate::role::Role;
use crate::storage::{StoreBackend, Stores};
use crate::workers::HandlerFactory;
use crate::{api, clients, ingest, recovery, telemetry, workers};

/// Configures an [`Orchestrator`]; [`build`](Self::build) assembles it.
///
/// Settings apply in the order they are called: [`from_env`](Self::from_env) replaces the whole
/// [`Config`], so call it first and override after it.
pub struct OrchestratorBuilder {
    config: Config,
    role: Role,
    store: Option<Stores>,
    clock: Arc<dyn Clock>,
    rules: Router,
    builtin_handlers: bool,
    handlers: Vec<(TaskType, HandlerFactory)>,
    services: Vec<Arc<dyn BackgroundService>>,
    health_checks: Vec<Arc<dyn HealthCheck>>,
    span_factory: SpanFactory,
}

impl std::fmt::Debug for OrchestratorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrchestratorBuilder")
            .field("role", &self.role)
            .field("rules", &self.rules)
            .field("handlers", &self.handlers.len())
            .field("services", &self.services.len())
            .finish_non_exhaustive()
    }
}

impl Default for OrchestratorBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl OrchestratorBuilder {
    /// The defaults: [`Config::default`] (the embedded SQLite file, no webhook secret), role
    /// `all`, the built-in rules and handlers, the system clock.
    pub fn new() -> Self {
        Self {
            config: Config::default(),
            role: Role::All,
            store: None,
            clock: Arc::new(SystemClock),
            rules: Router::with_default_rules(),
            builtin_handlers: true,
            handlers: Vec::new(),
            services: Vec::new(),
            health_checks: Vec::new(),
            span_factory: Arc::new(telemetry::task_span),
        }
    }

    /// The process's role (default `all`); set it before [`from_env`](Self::from_env), which
    /// requires the webhook secret only where deliveries are received.
    pub fn role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }

    /// Reads every variable of the reference server from the environment, validated as the
    /// server does (all problems at once, one line each), replacing the configuration.
    pub fn from_env(self) -> Result<Self, ConfigError> {
        let config = Config::from_env(Purpose::Serve(self.role))?;
        Ok(self.config(config))
    }

    /// Replaces the configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Changes the configuration in place (any crate setting: pool, API, clients, worker...).
    pub fn configure(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(&mut self.config);
        self
    }

    /// The configuration so far (e.g. for logging set-up and the listen address).
    pub fn current_config(&self) -> &Config {
        &self.config
    }

    /// Adds a webhook secret (the first signs `send`; more are accepted during a rotation).
    pub fn webhook_secret(mut self, secret: impl Into<String>) -> Self {
        self.config.webhook_secrets.push(Secret::new(secret));
        self
    }

    /// Sets the admin API's bearer token (without one, `/api/v1/*` answers 401).
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        self.config.api.admin_token = orchestrator_axum::AdminToken::new(token);
        self
    }

    /// Opens this database at build time (`sqlite:` or `postgres://`), with the configured pool.
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.config.database_url = Secret::new(url);
        self.store = None;
        self
    }

    /// Runs on `store` instead of a database URL: any store that is an event store, a task
    /// store and its own queue, such as [`MemoryStore`](orchestrator_core::memory::MemoryStore)
    /// for tests. A [`SqlStore`](orchestrator_sqlx::SqlStore) gets what a URL gets (group
    /// commit, the connections gauge, closed at shutdown).
    pub fn store<S: StoreBackend>(mut self, store: Arc<S>) -> Self {
        self.store = Some(Stores::of(store));
        self
    }

    /// Moves the task queue to Redis Streams and shares the replay guard and rate limiter
    /// through this Redis (`redis://` or `rediss://`).
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        let prefix = self.config.redis.take().map(|r| r.prefix);
        let mut redis = RedisConfig::new(url);
        if let Some(prefix) = prefix {
            redis.prefix = prefix;
        }
        self.config.redis = Some(redis);
        self
    }

    /// Sets the per-client rate limits of the receiver and the API.
    pub fn rate_limits(mut self, limits: RateLimits) -> Self {
        self.config.api.rate_limits = limits;
        self
    }

    /// Adds a routing rule (replacing a rule of the same name, built-ins included).
    pub fn rule(mut self, rule: impl Rule) -> Self {
        self.rules.add(rule);
        self
    }

    /// Removes the rule named `name` (e.g. a built-in: `pull_request_analysis`).
    pub fn remove_rule(mut self, name: &str) -> Self {
        self.rules.remove(name);
        self
    }

    /// Replaces every rule.
    pub fn rules(mut self, rules: Router) -> Self {
        self.rules = rules;
        self
    }

    /// Runs `task_type` with `handler` (replacing a built-in of the same type).
    pub fn handler(self, task_type: TaskType, handler: impl TaskHandler) -> Self {
        self.handler_with(task_type, move |_| handler)
    }

    /// Runs `task_type` with the handler `make` builds from the components (for a handler that
    /// uses the GitHub client, the stores, the clock...).
    pub fn handler_with<H, F>(mut self, task_type: TaskType, make: F) -> Self
    where
        H: TaskHandler,
        F: FnOnce(&Components) -> H + Send + 'static,
    {
        let factory: HandlerFactory = Box::new(move |c: &Components| Arc::new(make(c)));
        self.handlers.push((task_type, factory));
        self
    }

    /// Leaves out the five built-in handlers (their tasks then fail with "no handler").
    pub fn without_builtin_handlers(mut self) -> Self {
        self.builtin_handlers = false;
        self
    }

    /// Adds a background service (run in the roles it chooses, see [`BackgroundService`]).
    pub fn background(mut self, service: impl BackgroundService) -> Self {
        self.services.push(Arc::new(service));
        self
    }

    /// Adds a check to `/health`.
    pub fn health_check(mut self, check: impl HealthCheck + 'static) -> Self {
        self.health_checks.push(Arc::new(check));
        self
    }

    /// Injects the clock (e.g. a `ManualClock` in tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Makes the span each execution runs in (default: one that continues the trace of the
    /// delivery, [`telemetry::task_span`]).
    pub fn span_factory(mut self, factory: SpanFactory) -> Self {
        self.span_factory = factory;
        self
    }

    /// Assembles the orchestrator: opens the store and Redis, builds the clients, the ingest
    /// service, the HTTP state and the handlers. Nothing runs until
    /// [`serve`](Orchestrator::serve) or [`run_workers`](Orchestrator::run_workers).
    pub async fn build(self) -> Result<Orchestrator, ServerError> {
        let config = Arc::new(self.config);
        let (metrics, observer) = observe(&config)?;
        let stores = match self.store {
            Some(stores) => stores,
            None => Stores::connect(&config).await?,
        };
        tracing::info!(
            database = stores.database(),
            role = self.role.as_str(),
            "store ready"
        );
        let queue = stores.queue(&config, self.clock.clone(), observer.clone())?;
        let clients = clients::build(&config, &self.clock, &observer)?;
        if self.role.serves_api() && config.webhook_secrets.is_empty() {
            tracing::warn!("no webhook secret is set: every delivery is refused with 401");
        }
        let ingestor = ingest::ingestor(
            &config,
            crate::report::with_report_rules(&config, self.rules),
            stores.ingest_target(&config),
            queue.queue.clone(),
            self.clock.clone(),
            observer.clone(),
            queue.redis.as_ref(),
        )
        // Stale pull-request work is superseded in the same commit as each delivery.
        .with_supersede(config.supersede);
        let agent_budget = agent_budget(&config, queue.redis.as_ref());
        let mut components = Components {
            agent_budget,
            config,
            role: self.role,
            clock: self.clock,
            stores,
            queue: queue.queue,
            redis: queue.redis,
            ingestor: Arc::new(ingestor),
            github: clients.github,
            codegen: clients.codegen,
            breakers: clients.breakers,
            metrics,
            observer,
            reconciler: None,
        };
        components.reconciler = Some(recovery::reconciler(&components));
        let registry = workers::registry(&components, self.builtin_handlers, self.handlers);
        let state = api::state(&components, self.health_checks, registry.task_types());
        let mut services = background::builtin(&components);
        services.extend(self.services);
        Ok(Orchestrator::new(
            components,
            state,
            registry,
            services,
            self.span_factory,
        ))
    }
}

/// The agent budget: in Redis when it is configured (every worker shares the count), else in
/// this process.
fn agent_budget(config: &Config, redis: Option<&RedisConnection>) -> Arc<dyn AgentBudget> {
    let limits = config.handlers.budget;
    match redis {
        Some(conn) => Arc::new(RedisAgentBudget::new(conn.clone(), limits)),
        None => Arc::new(MemoryAgentBudget::new(limits)),
    }
}

/// The metrics `/metrics` serves, and the core's observer: the metrics, or nothing when
/// `ENABLE_METRICS=false`.
fn observe(config: &Config) -> Result<(Arc<Metrics>, Arc<dyn Observer>), ServerError> {
    let metrics =
        Arc::new(Metrics::new().map_err(|e| ServerError::Usage(format!("metrics: {e}")))?);
    let observer: Arc<dyn Observer> = if config.enable_metrics {
        metrics.clone()
    } else {
        Arc::new(NoopObserver)
    };
    Ok((metrics, observer))
}
