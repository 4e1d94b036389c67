//! The PostgreSQL store and queue.
//!
//! # Design note
//! Every write is one statement where it can be: PostgreSQL runs a statement with
//! data-modifying CTEs atomically, in its own implicit transaction, so one round trip is one
//! commit.
//! - **Ingest** inserts the event (`ON CONFLICT (delivery_id) DO NOTHING`) and all its tasks
//!   (`UNNEST` of one array per column) in a single statement; when the event row is not
//!   inserted, no task is. A duplicate delivery racing from another connection waits for the
//!   first commit and then inserts nothing.
//! - **Claim** picks due runnable rows through the partial index on `status IN ('pending',
//!   'retrying')` with `FOR UPDATE SKIP LOCKED`, so any number of worker processes share one
//!   database without blocking each other or taking a task twice; the same statement sets the
//!   lease, inserts the execution rows and stamps the events' `processing_started_at`.
//! - **Finish** updates the task (only while this claim's lease owner and running execution
//!   still hold it), closes the execution, inserts follow-ups and maintains the event's
//!   `open_tasks` counter in one statement. The counter is updated on the event row itself, so
//!   two tasks of one event finishing at once serialise on that row and exactly one of them
//!   sees the count reach zero and marks the event processed.
//! - Durability: ingest, reprocess and manual retries commit synchronously (the delivery is
//!   acknowledged only once its commit is flushed). Queue writes (claim, finish, leases) go
//!   through a second pool whose sessions run with `synchronous_commit = off` unless
//!   [`PoolOptions::durable_queue_writes`] is set: a database crash may forget the last few
//!   hundred milliseconds of them, which re-runs those tasks (at-least-once) but never loses
//!   one. This takes the per-task WAL flush out of the worker loop.
//! - Times come from the callers' `now`, never from `NOW()`.

mod agent_run;
mod attempt;
mod browse;
mod report;
mod rows;
mod stats;
mod store;
mod submit;
mod tasks;

use sqlx::postgres::{PgConnectOptions, PgPool};

use crate::config::PoolOptions;
use crate::error::Error;

/// Events, tasks and the task queue in one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    /// Durable writes (ingest, operator actions) and reads.
    pool: PgPool,
    /// Queue writes (claim, finish, leases) with `synchronous_commit = off`; `None` when
    /// [`PoolOptions::durable_queue_writes`] is set (they use `pool`).
    relaxed: Option<PgPool>,
}

impl PgStore {
    /// Connects to `url` (`postgres://...`) and, unless `options.run_migrations` is off,
    /// applies the embedded migrations.
    pub async fn connect(url: &str, options: &PoolOptions) -> Result<Self, Error> {
        let connect: PgConnectOptions = url.parse()?;
        Self::connect_with(connect, options).await
    }

    /// Like [`connect`](Self::connect) with parsed connect options (e.g. with a search path).
    pub async fn connect_with(
        connect: PgConnectOptions,
        options: &PoolOptions,
    ) -> Result<Self, Error> {
        let pool = options
            .pool::<sqlx::Postgres>()
            .connect_with(connect.clone())
            .await?;
        let relaxed = if options.durable_queue_writes {
            None
        } else {
            let relaxed = connect.options([("synchronous_commit", "off")]);
            Some(
                options
                    .pool::<sqlx::Postgres>()
                    .connect_with(relaxed)
                    .await?,
            )
        };
        let store = Self { pool, relaxed };
        if options.run_migrations {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// A store over an existing pool (no migrations are run); queue writes use it too.
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            relaxed: None,
        }
    }

    /// Applies the embedded migrations that are not applied yet.
    pub async fn migrate(&self) -> Result<(), Error> {
        crate::migrate::POSTGRES.run(&self.pool).await?;
        Ok(())
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Connections in use now (pool size minus idle), for `database_connections_active`.
    pub fn connections_active(&self) -> u32 {
        let busy = |pool: &PgPool| {
            pool.size()
                .saturating_sub(u32::try_from(pool.num_idle()).unwrap_or(u32::MAX))
        };
        busy(&self.pool).saturating_add(self.relaxed.as_ref().map_or(0, busy))
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(relaxed) = &self.relaxed {
            relaxed.close().await;
        }
    }

    /// The pool for queue writes.
    fn queue(&self) -> &PgPool {
        self.relaxed.as_ref().unwrap_or(&self.pool)
    }
}
