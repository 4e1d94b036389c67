//! The SQLite store and queue: the embedded default, one database file.
//!
//! # Design note
//! SQLite allows one writer at a time. The store keeps two pools on the same file: a writer
//! pool of exactly one connection, through which every write transaction goes (so writers of
//! this process queue in the pool instead of spinning on the file lock), and a reader pool for
//! lists, details and figures (WAL mode lets readers run beside the writer). Every write
//! transaction starts with `BEGIN IMMEDIATE`, taking the write lock up front, and
//! `busy_timeout` makes a writer in another process wait for it rather than fail with
//! `SQLITE_BUSY`; a deferred transaction that upgrades from read to write could fail instead.
//! Because writes are serialised, a claim is a plain `UPDATE ... WHERE id IN (SELECT ... LIMIT n)`
//! and no task can be claimed twice.
//!
//! Durability: WAL with `synchronous=FULL` by default, so a commit is on disk before ingest
//! acknowledges the delivery. [`SqliteDurability::Normal`](crate::SqliteDurability::Normal)
//! trades the last commits on power loss (never on a process crash) for speed.
//!
//! Checkpoints: a background task copies WAL pages into the database file beside the writer
//! (module `checkpoint`), so commits seldom pay for it.
//!
//! Times are INTEGER microseconds since the epoch, UUIDs 16-byte BLOBs, JSON TEXT, except
//! delivery payloads, which are zstd BLOBs when `payload_encoding` says so (module `payload`).

mod agent_run;
mod attempt;
mod batch;
mod browse;
mod checkpoint;
mod payload;
mod report;
mod rows;
mod stats;
mod store;
mod submit;
mod tasks;

use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
use sqlx::{Sqlite, Transaction};

use crate::config::{PoolOptions, SqliteDurability};
use crate::error::{Error, store_error};

/// Page size of a new database file (an existing file keeps its own). With payloads stored
/// compressed (about 3 KiB for a 28 KiB body) rows are small, and the one index with scattered
/// keys (the delivery id) dirties one leaf page per delivery in every commit: 4 KiB pages write
/// half the bytes of 16 KiB ones (WAL plus checkpoint, ~250 against ~500 MB/s at 8,000
/// deliveries/s) at the same throughput (docs/benchmarks.md).
const PAGE_SIZE: u32 = 4096;

/// Events, tasks and the task queue in one SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Wakes the background WAL checkpointer (see `checkpoint`).
    checkpoint: tokio::sync::mpsc::Sender<()>,
    /// Store large payloads zstd-compressed (see `payload`).
    compress_payloads: bool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path.db`, `sqlite:path.db`)
    /// and, unless `options.run_migrations` is off, applies the embedded migrations.
    pub async fn connect(url: &str, options: &PoolOptions) -> Result<Self, Error> {
        let connect = SqliteConnectOptions::from_str(url)?;
        Self::connect_with(connect, options).await
    }

    /// Like [`connect`](Self::connect) with parsed connect options; WAL, durability, busy
    /// timeout and foreign keys are set from `options`.
    pub async fn connect_with(
        connect: SqliteConnectOptions,
        options: &PoolOptions,
    ) -> Result<Self, Error> {
        let synchronous = match options.sqlite_durability {
            SqliteDurability::Full => SqliteSynchronous::Full,
            SqliteDurability::Normal => SqliteSynchronous::Normal,
        };
        let connect = connect
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(options.sqlite_busy_timeout)
            .foreign_keys(true)
            .page_size(PAGE_SIZE);
        let writer = PoolOptions {
            max_connections: 1,
            min_connections: 1,
            ..options.clone()
        }
        .pool::<Sqlite>()
        // A file connection does not go stale; a ping would be one more round trip per write.
        .test_before_acquire(false)
        .before_acquire(|conn, _| Box::pin(out_of_transaction(conn)))
        .connect_with(
            connect
                .clone()
                .pragma(
                    "wal_autocheckpoint",
                    checkpoint::WRITER_AUTOCHECKPOINT_PAGES,
                )
                .pragma("temp_store", "memory")
                .statement_cache_capacity(batch::WRITER_STATEMENT_CACHE),
        )
        .await?;
        let store_reader = options
            .pool::<Sqlite>()
            .test_before_acquire(false)
            .connect_with(connect)
            .await?;
        let store = Self {
            checkpoint: checkpoint::spawn(store_reader.clone()),
            compress_payloads: options.sqlite_compress_payloads,
            writer,
            reader: store_reader,
        };
        if options.run_migrations {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Applies the embedded migrations that are not applied yet.
    pub async fn migrate(&self) -> Result<(), Error> {
        crate::migrate::SQLITE.run(&self.writer).await?;
        Ok(())
    }

    /// The pool every write goes through (one connection).
    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// The pool for reads.
    pub fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// Connections in use now (pool sizes minus idle), for `database_connections_active`.
    pub fn connections_active(&self) -> u32 {
        let busy = |pool: &SqlitePool| {
            pool.size()
                .saturating_sub(u32::try_from(pool.num_idle()).unwrap_or(u32::MAX))
        };
        busy(&self.writer).saturating_add(busy(&self.reader))
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    /// Asks the background checkpointer to copy recently committed WAL pages into the database.
    fn committed(&self) {
        let _ = self.checkpoint.try_send(());
    }

    /// A write transaction holding the database's write lock from the start.
    async fn write(
        &self,
    ) -> Result<Transaction<'static, Sqlite>, orchestrator_core::error::StoreError> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(store_error)
    }
}

/// Whether the writer connection may be handed out: not while sqlx still counts a transaction on
/// it. When a commit fails on a full disk (or an I/O error), SQLite rolls the transaction back
/// itself; sqlx's own rollback then fails ("no transaction is active") and its count stays at
/// one, so every later `BEGIN IMMEDIATE` would fail for ever and the store would never write
/// again, even once space is back. Such a connection is closed and the pool opens a fresh one.
/// The ping first lets a rollback still queued on the connection run (the usual case after a
/// failed transaction); it costs nothing while no transaction is counted.
async fn out_of_transaction(conn: &mut sqlx::SqliteConnection) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    if !conn.is_in_transaction() {
        return Ok(true);
    }
    conn.ping().await?;
    if conn.is_in_transaction() {
        tracing::warn!(
            "SQLite writer connection left inside a transaction after a failed commit; replacing it"
        );
        return Ok(false);
    }
    Ok(true)
}
