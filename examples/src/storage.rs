//! The store and its queue: the one place that knows which store traits the orchestrator runs
//! on. It opens the database of `DATABASE_URL` (or takes the embedder's store), picks the task
//! queue (the store's own, or Redis Streams when Redis is configured), puts group commit in
//! front of ingest, and closes the connections at the end.
//!
//! Any store that is an event store, a task store, an attempt store and an agent-run ledger
//! ([`StoreBackend`]: the SQL stores, the in-memory store) can be given to the builder; its own
//! queue is the core's `StoreQueue` over its task table; a [`SqlStore`] given that way is
//! treated exactly like one opened from a URL.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use orchestrator_core::clock::Clock;
use orchestrator_core::engine::GroupCommit;
use orchestrator_core::observe::Observer;
use orchestrator_core::queue::{StoreQueue, TaskQueue};
use orchestrator_core::store::agent_run::AgentRunStore;
use orchestrator_core::store::browse::BrowseStore;
use orchestrator_core::store::report::ReportStore;
use orchestrator_core::store::{AttemptStore, EventStore, SubmitStore, TaskStore};
use orchestrator_redis::{QueueConfig, RedisConnection, RedisQueue};
use orchestrator_sqlx::{PoolOptions, SqlStore};

use crate::config::Config;
use crate::error::ServerError;

/// What the builder needs from a store: events, task reads and operator actions, the attempt
/// state machine (its task table is the database queue), the agent-run ledger
/// (`codegen_trigger` records every Codegen run creation in it first), the console's
/// keyset-paged lists, the reporter's cursor and records, and tasks from no delivery (the
/// `cleanup` task).
pub trait StoreBackend:
    EventStore + TaskStore + AttemptStore + AgentRunStore + BrowseStore + ReportStore + SubmitStore
{
}

impl<T> StoreBackend for T where
    T: EventStore
        + TaskStore
        + AttemptStore
        + AgentRunStore
        + BrowseStore
        + ReportStore
        + SubmitStore
{
}

/// The store, seen through each trait the orchestrator uses. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Stores {
    pub(crate) events: Arc<dyn EventStore>,
    pub(crate) tasks: Arc<dyn TaskStore>,
    /// Claims, finishes and leases (the queues and workers drive them).
    pub(crate) attempts: Arc<dyn AttemptStore>,
    /// The agent-run ledger.
    pub(crate) agent_runs: Arc<dyn AgentRunStore>,
    /// Tasks from no delivery (the `cleanup` task).
    pub(crate) submit: Arc<dyn SubmitStore>,
    /// The console's keyset-paged lists.
    pub(crate) browse: Arc<dyn BrowseStore>,
    /// The reporter's cursor and records (reporting back on the pull request).
    pub(crate) reports: Arc<dyn ReportStore>,
    /// The store's own queue (its task table).
    own_queue: Arc<dyn TaskQueue>,
    /// The store as given, for services that need more than the traits.
    pub(crate) any: Arc<dyn Any + Send + Sync>,
    /// The SQL store, when it is one: connection gauge, group commit, closing.
    pub(crate) sql: Option<Arc<SqlStore>>,
}

/// The task queue, and the Redis connection when the queue is on Redis (the guards share it).
pub(crate) struct QueueParts {
    pub(crate) queue: Arc<dyn TaskQueue>,
    pub(crate) redis: Option<RedisConnection>,
}

impl Stores {
    /// Any store given by an embedder.
    pub(crate) fn of<S: StoreBackend>(store: Arc<S>) -> Self {
        let any: Arc<dyn Any + Send + Sync> = store.clone();
        Self {
            events: store.clone(),
            tasks: store.clone(),
            attempts: store.clone(),
            agent_runs: store.clone(),
            submit: store.clone(),
            browse: store.clone(),
            reports: store.clone(),
            own_queue: Arc::new(StoreQueue::new(store)),
            sql: any.clone().downcast::<SqlStore>().ok(),
            any,
        }
    }

    /// Opens `DATABASE_URL` with the pool settings, applying the migrations.
    pub(crate) async fn connect(config: &Config) -> Result<Self, ServerError> {
        Ok(Self::of(Arc::new(open(config, true).await?)))
    }

    /// `postgres`, `sqlite`, or the queue's name for another store (`memory`).
    pub(crate) fn database(&self) -> &'static str {
        match &self.sql {
            Some(sql) => sql.database(),
            None => self.own_queue.backend(),
        }
    }

    /// Connections in use now, for a SQL store.
    pub(crate) fn connections_active(&self) -> Option<u32> {
        self.sql.as_ref().map(|s| s.connections_active())
    }

    /// Where the receiver commits deliveries. Group commit: concurrent deliveries share one
    /// transaction (one disk flush); each is answered only after the commit that holds it. One
    /// committer for SQLite (one writer anyway) on its own thread, one per pooled connection
    /// for PostgreSQL. Other stores, and `INGEST_BATCH_MAX` of 0 or 1, commit each alone.
    pub(crate) fn ingest_target(&self, config: &Config) -> Arc<dyn EventStore> {
        let batch = config.ingest_batch_max;
        match &self.sql {
            Some(sql) if batch > 1 && sql.database() == "sqlite" => {
                Arc::new(GroupCommit::on_own_thread(sql.clone(), batch))
            }
            Some(sql) if batch > 1 => Arc::new(GroupCommit::new(
                sql.clone(),
                config.pool.max_connections as usize,
                batch,
            )),
            _ => self.events.clone(),
        }
    }

    /// The task queue: Redis Streams when Redis is configured (over this store's tasks), else
    /// the store's own.
    pub(crate) fn queue(
        &self,
        config: &Config,
        clock: Arc<dyn Clock>,
        observer: Arc<dyn Observer>,
    ) -> Result<QueueParts, ServerError> {
        let Some(redis_config) = &config.redis else {
            return Ok(QueueParts {
                queue: self.own_queue.clone(),
                redis: None,
            });
        };
        let redis = |e: orchestrator_redis::Error| ServerError::Usage(format!("REDIS_URL: {e}"));
        redis_config.validate().map_err(redis)?;
        let conn = RedisConnection::new(redis_config.clone()).map_err(redis)?;
        let queue = RedisQueue::new(
            conn.clone(),
            queue_config(config),
            self.tasks.clone(),
            self.attempts.clone(),
            clock,
        )
        .map_err(redis)?
        .with_observer(observer);
        tracing::info!("task queue: Redis Streams");
        Ok(QueueParts {
            queue: Arc::new(queue),
            redis: Some(conn),
        })
    }

    /// Closes a SQL store's connections, waiting at most `grace` (a request cut off at
    /// shutdown may still hold one).
    pub(crate) async fn close(&self, grace: Duration) {
        let Some(sql) = &self.sql else { return };
        if tokio::time::timeout(grace, sql.close()).await.is_err() {
            tracing::warn!("database connections still in use at shutdown; not waiting for them");
        }
    }
}

/// Applies the migrations of `DATABASE_URL` and exits (`migrate`).
pub async fn migrate(config: &Config) -> Result<(), ServerError> {
    let store = open(config, false).await?;
    store
        .migrate()
        .await
        .map_err(|e| ServerError::Usage(format!("migration failed: {e}")))?;
    tracing::info!(database = store.database(), "migrations applied");
    store.close().await;
    Ok(())
}

async fn open(config: &Config, run_migrations: bool) -> Result<SqlStore, ServerError> {
    let options = PoolOptions {
        run_migrations,
        ..config.pool.clone()
    };
    SqlStore::connect(config.database_url.expose(), options)
        .await
        .map_err(|e| ServerError::Usage(format!("cannot open the database (DATABASE_URL): {e}")))
}

/// The Redis queue's settings. A busy worker refreshes its message only when it renews its
/// lease (every `lease / 3`), so the visibility timeout must be well above that or the messages
/// of live workers are taken over and, after a few scans, dead-lettered.
fn queue_config(config: &Config) -> QueueConfig {
    let configured = config.redis_queue.clone();
    QueueConfig {
        visibility_timeout: configured.visibility_timeout.max(config.worker.lease),
        ..configured
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use orchestrator_core::memory::MemoryStore;

    use super::*;

    fn config(lease: u64) -> Config {
        let mut config = Config::default();
        config.worker.lease = Duration::from_secs(lease);
        config
    }

    #[test]
    fn a_long_worker_lease_keeps_live_workers_messages_from_being_taken_over() {
        let long = queue_config(&config(900));
        // The worker refreshes its message every lease / 3 = 300 s.
        assert!(long.visibility_timeout >= Duration::from_secs(900));
        let short = queue_config(&config(30));
        assert_eq!(short.visibility_timeout, Duration::from_secs(120));
    }

    #[test]
    fn a_store_that_is_not_sql_is_its_own_queue_without_group_commit() {
        let stores = Stores::of(Arc::new(MemoryStore::new()));
        assert!(stores.sql.is_none());
        assert_eq!(stores.database(), "memory");
        assert_eq!(stores.connections_active(), None);
        let parts = stores.queue(
            &Config::default(),
            Arc::new(orchestrator_core::clock::SystemClock),
            Arc::new(orchestrator_core::observe::NoopObserver),
        );
        assert_eq!(parts.unwrap().queue.backend(), "memory");
        assert!(stores.any.downcast::<MemoryStore>().is_ok());
    }
}
