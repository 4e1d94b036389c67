//! [`SqlStore`]: PostgreSQL or SQLite, chosen at run time from the database URL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::event::{EventSummary, NewEvent, WebhookEvent};
use orchestrator_core::store::{
    AttemptStore, BatchDelivery, BatchStore, Claim, CleanupReport, EventFilter, EventStore,
    ExternalRun, Finish, FinishReport, IngestOutcome, NewDelivery, Page, QueueDepth,
    ReprocessOutcome, RetentionPolicy, RetryOutcome, Stats, TaskFilter, TaskStore,
};
use orchestrator_core::task::{NewTask, Task, TaskDetail};
use uuid::Uuid;

use crate::config::PoolOptions;
use crate::error::Error;
use crate::postgres::PgStore;
use crate::sqlite::{PreparedPayload, SqliteStore};

/// The store of whichever database the URL names; the core's `StoreQueue` over it is the
/// database queue.
#[derive(Debug, Clone)]
pub enum SqlStore {
    /// `postgres://` / `postgresql://`.
    Postgres(PgStore),
    /// `sqlite:`.
    Sqlite(SqliteStore),
}

impl SqlStore {
    /// Connects by URL scheme (`postgres://`, `postgresql://`, `sqlite:`), applying the
    /// embedded migrations unless `options.run_migrations` is off.
    pub async fn connect(url: &str, options: PoolOptions) -> Result<Self, Error> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(PgStore::connect(url, &options).await?))
        } else if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(SqliteStore::connect(url, &options).await?))
        } else {
            Err(Error::UnsupportedUrl)
        }
    }

    /// Applies the embedded migrations that are not applied yet.
    pub async fn migrate(&self) -> Result<(), Error> {
        match self {
            Self::Postgres(s) => s.migrate().await,
            Self::Sqlite(s) => s.migrate().await,
        }
    }

    /// Connections in use now, for the `database_connections_active` gauge.
    pub fn connections_active(&self) -> u32 {
        match self {
            Self::Postgres(s) => s.connections_active(),
            Self::Sqlite(s) => s.connections_active(),
        }
    }

    /// `postgres` or `sqlite`.
    pub fn database(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgres",
            Self::Sqlite(_) => "sqlite",
        }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match self {
            Self::Postgres(s) => s.close().await,
            Self::Sqlite(s) => s.close().await,
        }
    }
}

impl From<PgStore> for SqlStore {
    fn from(store: PgStore) -> Self {
        Self::Postgres(store)
    }
}

impl From<SqliteStore> for SqlStore {
    fn from(store: SqliteStore) -> Self {
        Self::Sqlite(store)
    }
}

/// Calls the same method on whichever store this is.
macro_rules! both {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            SqlStore::Postgres($s) => $call,
            SqlStore::Sqlite($s) => $call,
        }
    };
}
pub(crate) use both;

#[async_trait]
impl EventStore for SqlStore {
    async fn ingest_delivery(&self, delivery: NewDelivery) -> Result<IngestOutcome, StoreError> {
        both!(self, s => s.ingest_delivery(delivery).await)
    }
    async fn list_events(
        &self,
        filter: &EventFilter,
        page: Page,
    ) -> Result<Vec<EventSummary>, StoreError> {
        both!(self, s => s.list_events(filter, page).await)
    }
    async fn get_event(&self, id: i64) -> Result<Option<WebhookEvent>, StoreError> {
        both!(self, s => s.get_event(id).await)
    }
    async fn reprocess_event(
        &self,
        id: i64,
        tasks: Vec<NewTask>,
        now: DateTime<Utc>,
    ) -> Result<ReprocessOutcome, StoreError> {
        both!(self, s => s.reprocess_event(id, tasks, now).await)
    }
}

/// SQLite prepares the compressed payload; PostgreSQL prepares nothing.
#[async_trait]
impl BatchStore for SqlStore {
    type Prepared = Option<PreparedPayload>;

    fn prepare(&self, event: &NewEvent) -> Option<PreparedPayload> {
        match self {
            Self::Postgres(_) => None,
            Self::Sqlite(s) => s.prepare(event),
        }
    }

    async fn ingest_batch(
        &self,
        batch: Vec<BatchDelivery<Option<PreparedPayload>>>,
    ) -> Vec<Result<IngestOutcome, StoreError>> {
        match self {
            Self::Postgres(s) => {
                let batch = batch.into_iter().map(|(d, _)| (d, ())).collect();
                s.ingest_batch(batch).await
            }
            Self::Sqlite(s) => s.ingest_batch(batch).await,
        }
    }
}

#[async_trait]
impl TaskStore for SqlStore {
    async fn list_tasks(&self, filter: &TaskFilter, page: Page) -> Result<Vec<Task>, StoreError> {
        both!(self, s => s.list_tasks(filter, page).await)
    }
    async fn get_task(&self, task_id: Uuid) -> Result<Option<TaskDetail>, StoreError> {
        both!(self, s => s.get_task(task_id).await)
    }
    async fn retry_task(
        &self,
        task_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<RetryOutcome, StoreError> {
        both!(self, s => s.retry_task(task_id, now).await)
    }
    async fn stats(&self, now: DateTime<Utc>) -> Result<Stats, StoreError> {
        both!(self, s => s.stats(now).await)
    }
    async fn cleanup(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
    ) -> Result<CleanupReport, StoreError> {
        both!(self, s => s.cleanup(policy, now).await)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        both!(self, s => s.ping().await)
    }
}

#[async_trait]
impl AttemptStore for SqlStore {
    async fn record_external_run(
        &self,
        task_id: Uuid,
        run: &ExternalRun,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        both!(self, s => s.record_external_run(task_id, run, now).await)
    }
    async fn claim_due(
        &self,
        worker: &str,
        max: usize,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>, StoreError> {
        both!(self, s => s.claim_due(worker, max, lease_until, now).await)
    }
    async fn start_attempt(
        &self,
        task_id: Uuid,
        worker: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Claim>, StoreError> {
        both!(self, s => s.start_attempt(task_id, worker, lease_until, now).await)
    }
    async fn finish_attempt(
        &self,
        claim: &Claim,
        finish: Finish,
        now: DateTime<Utc>,
    ) -> Result<FinishReport, StoreError> {
        both!(self, s => s.finish_attempt(claim, finish, now).await)
    }
    async fn extend_lease(
        &self,
        claim: &Claim,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        both!(self, s => s.extend_lease(claim, lease_until).await)
    }
    async fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError> {
        both!(self, s => s.expire_leases(now).await)
    }
    async fn stale_runnable(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError> {
        both!(self, s => s.stale_runnable(stale_before, now, limit).await)
    }
    async fn queue_depth(&self, now: DateTime<Utc>) -> Result<QueueDepth, StoreError> {
        both!(self, s => s.queue_depth(now).await)
    }
}
