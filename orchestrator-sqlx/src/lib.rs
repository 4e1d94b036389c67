//! PostgreSQL and SQLite storage for the webhook orchestrator, with a task queue on the same
//! tables.
//!
//! The store is the source of truth: [`EventStore::ingest`](orchestrator_core::store::EventStore::ingest)
//! commits a delivery and all its tasks before the receiver acknowledges it, and the database
//! queue (the core's [`StoreQueue`](orchestrator_core::queue::StoreQueue) over these stores'
//! [`AttemptStore`](orchestrator_core::store::AttemptStore)) claims tasks straight from the task
//! table with leases, so a task is never lost between ingest and execution.
//!
//! Pick a database at run time with [`SqlStore::connect`]: `postgres://...` for production
//! (any number of worker processes can share it), `sqlite://path.db` as the embedded default
//! (one file, WAL mode). Migrations are embedded and applied on connect; [`SqlStore::migrate`]
//! applies them explicitly.
//!
//! # Design
//! - PostgreSQL: single-statement writes with data-modifying CTEs (one round trip, one commit
//!   each); claiming with `FOR UPDATE SKIP LOCKED` over a partial index of runnable rows; queue
//!   writes on a `synchronous_commit = off` pool unless
//!   [`PoolOptions::durable_queue_writes`] is set. See [`PgStore`].
//! - SQLite: one writer at a time; every write transaction starts with `BEGIN IMMEDIATE` and
//!   waits on `busy_timeout`, so concurrent writers queue instead of failing with `SQLITE_BUSY`.
//!   See [`SqliteStore`].
//! - Both keep an `open_tasks` counter on each event, changed in the same statement or
//!   transaction as the task status, so "the event is processed when its last task is
//!   terminal" needs no lock across statements.
//! - `BatchStore::ingest_batch` (the core's group commit) writes a whole batch in one
//!   transaction, one commit; if any delivery of it fails, the batch is rolled back and ingested one by one, so
//!   no delivery's failure takes another with it.
//! - A delivery's pull-request updates (superseding stale work, `supersede.rs`) run in its
//!   ingest transaction, right after its tasks, each under a savepoint; on PostgreSQL the
//!   transaction first takes an advisory lock per pull request touched, in one sorted order.
//! - Every time written comes from the callers' `now` arguments (never the database clock).
//! - All SQL is static text with bound parameters.
//!
//! # Layout
//! - `config.rs`: pool and durability settings ([`PoolOptions`]).
//! - `error.rs`: [`Error`] and the mapping onto the core's `StoreError` kinds.
//! - [`migrate`]: the embedded migrations (`migrations/postgres`, `migrations/sqlite`).
//! - `plan.rs`: what a finished attempt writes, computed once for both databases.
//! - `postgres/`: [`PgStore`] (`store.rs` events, `tasks.rs` task reads and operator actions,
//!   `attempt.rs` claims, finishes and leases, `stats.rs` figures and retention, `rows.rs` decoding).
//! - `sqlite/`: [`SqliteStore`], the same files, plus `insert.rs` (the event and task inserts,
//!   one delivery or a multi-row batch), `payload.rs` (zstd payloads, [`PreparedPayload`]) and
//!   `checkpoint.rs` (the background WAL checkpointer).
//! - `sql_store.rs`: [`SqlStore`], the run-time choice between the two.
//! - `browse.rs`: keyset-paged lists (`BrowseStore`) for both databases and [`SqlStore`];
//!   each database's implementation in its `browse.rs`.
//! - `agent_run.rs`: the agent-run ledger (`AgentRunStore`) shared parts and its [`SqlStore`]
//!   implementation; each database's statements in its `agent_run.rs`.
//! - `operation.rs`: bulk operations (`OperationStore`): the filter's conditions, the shared
//!   statements and the [`SqlStore`] implementation; each database's in its `operation.rs`.
//! - `cancel.rs`: cancelling tasks (`CancelStore`), the same way: shared parts and the
//!   [`SqlStore`] dispatch here, each database's transaction in its `cancel.rs`.
//! - `recovery.rs`: recovery runs (`RecoveryStore`), shared statements and its [`SqlStore`]
//!   implementation; each database's binding and runner lease in its `recovery.rs`.
//! - `report.rs`: the reporter's cursor and records (`ReportStore`), the same way.

mod agent_run;
mod browse;
mod cancel;
mod config;
mod error;
mod list;
pub mod migrate;
mod operation;
mod pause;
mod plan;
mod postgres;
mod recovery;
mod report;
mod sql_store;
mod sqlite;
mod stats;
mod submit;
mod supersede;

pub use config::{PoolOptions, SqliteDurability};
pub use error::Error;
pub use postgres::PgStore;
pub use sql_store::SqlStore;
pub use sqlite::{PreparedPayload, SqliteStore};
